// The dashboard's "Safety flags" tile: requests the input safety check flagged in the
// dashboard's window, per expert and category (GET /api/v1/safety/stats).
import { useEffect, useState } from "react";

import type { Api } from "../api/client";
import type { SafetyFlagStats } from "../api/types";
import { navigate } from "../location";

/** "code 3, legal 1" from a count per name, largest first. */
function counts(byName: Record<string, number>): string {
  return Object.entries(byName)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, n]) => `${name} ${n}`)
    .join(", ");
}

/** The tile's value and detail line for a stats answer. */
export function safetyTile(stats: SafetyFlagStats): { value: string; detail: string } {
  if (!stats.total) return { value: "0", detail: "no request was flagged in this window" };
  const falsePositives = stats.labels.benign ?? 0;
  return {
    value: String(stats.total),
    detail:
      `per expert: ${counts(stats.by_expert)}; per category: ${counts(stats.by_category)}; ` +
      `${stats.unlabelled} not labelled` +
      (falsePositives ? `, ${falsePositives} labelled false positive${falsePositives === 1 ? "" : "s"}` : ""),
  };
}

/** A tile (an <li> of the dashboard's tile list) for the window the dashboard shows;
 * nothing while it loads or when the caller may not read the flags. */
export function SafetyFlagsTile({ api, window }: { api: Api; window: { since: string; until: string } }) {
  const [stats, setStats] = useState<SafetyFlagStats | null>(null);

  useEffect(() => {
    let cancelled = false;
    api.safetyStats({ since: window.since, until: window.until }).then(
      (s) => !cancelled && setStats(s),
      () => !cancelled && setStats(null),
    );
    return () => {
      cancelled = true;
    };
  }, [api, window]);

  if (!stats) return null;
  const tile = safetyTile(stats);
  return (
    <li className="tile card">
      <span className="tile-label">Safety flags</span>
      <span className="tile-value" data-testid="tile-Safety flags">
        {tile.value}
      </span>
      <span className="muted small">
        {tile.detail} (
        <a
          href="/console/safety"
          onClick={(e) => {
            e.preventDefault();
            navigate("/console/safety");
          }}
        >
          review
        </a>
        )
      </span>
    </li>
  );
}

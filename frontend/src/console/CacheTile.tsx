// The dashboard's "Response cache" tile: hit rate and tokens saved per expert over the
// dashboard's window (the `cache` field of GET /api/v1/admin/stats, from the audit trail).
import type { DashboardStats } from "../api/types";

type CacheStats = DashboardStats["cache"];
type CacheCounts = CacheStats["total"];

const number = (n: number) => n.toLocaleString("en-US");

/** "75.0%", or "–" when nothing was looked up (no rate to show). */
export function hitRate(c: CacheCounts): string {
  return c.hit_rate === null ? "–" : `${(100 * c.hit_rate).toFixed(1)}%`;
}

/** "3 of 4 lookups hit (2 exact, 1 semantic), 96 tokens saved". */
function counted(c: CacheCounts): string {
  const hits = c.hits ? ` (${c.exact_hits} exact, ${c.semantic_hits} semantic)` : "";
  return `${c.hits} of ${c.lookups} lookup${c.lookups === 1 ? "" : "s"} hit${hits}, ${number(c.tokens_saved)} tokens saved`;
}

export interface CacheTileText {
  value: string;
  detail: string;
  /** One line per expert whose cache is on or that has lookups in the window. */
  experts: { expert: string; text: string }[];
  /** Experts whose cache is off (and that had no lookups in the window). */
  off: string[];
}

/** What the tile says for a stats answer: every state in words, never by colour alone. */
export function cacheTile(cache: CacheStats): CacheTileText {
  const shown = cache.experts.filter((e) => e.enabled || e.counts.lookups > 0);
  const off = cache.experts.filter((e) => !e.enabled && e.counts.lookups === 0).map((e) => e.expert);
  const experts = shown.map((e) => ({
    expert: e.expert,
    text: e.counts.lookups
      ? `${hitRate(e.counts)} hit rate: ${counted(e.counts)}${e.enabled ? "" : " (cache now off)"}`
      : "on, no lookups in this window",
  }));
  if (cache.enabled === 0 && cache.total.lookups === 0) {
    return { value: "Off", detail: "the cache is off for every expert", experts: [], off: [] };
  }
  if (cache.total.lookups === 0) {
    return { value: "–", detail: "no lookups in this window", experts, off };
  }
  return { value: hitRate(cache.total), detail: `hit rate: ${counted(cache.total)}`, experts, off };
}

/** A tile (an <li> of the dashboard's tile list). */
export function ResponseCacheTile({ cache }: { cache: CacheStats }) {
  const tile = cacheTile(cache);
  return (
    <li className="tile card">
      <span className="tile-label">Response cache</span>
      <span className="tile-value" data-testid="tile-Response cache">
        {tile.value}
      </span>
      <span className="muted small">{tile.detail}</span>
      {tile.experts.length > 0 && (
        <ul className="small cache-experts" aria-label="Response cache per expert">
          {tile.experts.map((e) => (
            <li key={e.expert}>
              <span className="tile-label">{e.expert}</span> {e.text}
            </li>
          ))}
        </ul>
      )}
      {tile.off.length > 0 && <span className="muted small">off for {tile.off.join(", ")}</span>}
    </li>
  );
}

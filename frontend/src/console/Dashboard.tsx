import { useCallback, useEffect, useId, useState } from "react";

import type { Api } from "../api/client";
import type { DashboardStats, ReviewQueueStats } from "../api/types";
import { ResponseCacheTile } from "./CacheTile";
import { BarChart, LineChart, seriesColor } from "./charts";
import { SafetyFlagsTile } from "./SafetyTile";
import { ErrorLine, GridTable } from "./Table";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const WINDOWS = [
  { id: "1h", label: "Last hour", hours: 1 },
  { id: "24h", label: "Last 24 hours", hours: 24 },
  { id: "7d", label: "Last 7 days", hours: 24 * 7 },
  { id: "30d", label: "Last 30 days", hours: 24 * 30 },
] as const;

export interface Tile {
  label: string;
  value: string;
  detail: string;
}

export function percent(part: number, whole: number): string {
  return whole ? `${((100 * part) / whole).toFixed(1)}%` : "–";
}

/** The headline figures of a stats answer, as the tiles above the charts show them. */
export function summarize(stats: DashboardStats): Tile[] {
  const o = stats.outcomes;
  const b = stats.balance;
  return [
    { label: "Requests", value: String(o.requests), detail: "chat requests in the window" },
    { label: "Abstained", value: percent(o.abstained, o.requests), detail: `${o.abstained} went to the generalist (low confidence or out of domain)` },
    { label: "Fallbacks", value: percent(o.fallback, o.requests), detail: `${o.fallback} answered by a fallback expert` },
    { label: "Quota", value: String(o.quota_rejected), detail: `rejected over quota; ${o.degraded} degraded to the generalist` },
    { label: "Errors", value: percent(o.errors, o.requests), detail: `${o.errors} failed on our side` },
    {
      label: "Load balance",
      value: o.requests ? b.balance.toFixed(2) : "–",
      detail: `expert choice entropy ${b.entropy_bits.toFixed(2)} of ${b.max_bits.toFixed(2)} bits (1.00 is even)`,
    },
  ];
}

function bucketLabel(iso: string, bucketS: number): string {
  const d = new Date(iso);
  return bucketS >= 86_400
    ? d.toLocaleDateString([], { month: "short", day: "numeric" })
    : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const ms = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;

/** A waiting time in words: "45 s", "12 min", "3.5 h". */
export function waited(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The review queue's tile: how many answers wait for a person, and for how long. */
export function reviewTile(q: ReviewQueueStats): Tile {
  const experts = Object.entries(q.by_expert)
    .map(([expert, n]) => `${expert} ${n}`)
    .join(", ");
  return {
    label: "Review queue",
    value: String(q.pending),
    detail: q.pending
      ? `waiting p50 ${waited(q.age_p50_s)}, p95 ${waited(q.age_p95_s)}, oldest ${waited(q.age_max_s)} (${experts})`
      : "no answer waits for a person",
  };
}

/** Charts over the audit trail (GET /api/v1/admin/stats): admins and auditors. */
export function Dashboard({ api }: { api: Api }) {
  const [windowId, setWindowId] = useState<(typeof WINDOWS)[number]["id"]>("24h");
  const [stats, setStats] = useState<DashboardStats | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [queue, setQueue] = useState<ReviewQueueStats | null>(null);
  const id = useId();

  const load = useCallback(async () => {
    const hours = WINDOWS.find((w) => w.id === windowId)?.hours ?? 24;
    const until = new Date();
    const since = new Date(until.getTime() - hours * 3_600_000);
    try {
      setStats(await api.stats({ since: since.toISOString(), until: until.toISOString() }));
      setError(null);
      // The queue is "now", not a window; a failure here must not hide the figures above.
      setQueue(await api.reviewStats().catch(() => null));
    } catch (err) {
      setError(`Could not load the figures: ${message(err)}`);
    }
  }, [api, windowId]);

  useEffect(() => {
    void load();
  }, [load]);

  const latency = stats?.latency ?? [];
  const perStage = latency.filter((l) => l.expert === "all");
  const perExpert = latency.filter((l) => l.expert !== "all" && l.stage === "total");

  return (
    <section aria-labelledby={`${id}-h`} className="dashboard">
      <h2 id={`${id}-h`}>Dashboard</h2>
      <div className="row dashboard-controls">
        <label htmlFor={`${id}-w`}>Window</label>
        <select id={`${id}-w`} value={windowId} onChange={(e) => setWindowId(e.target.value as typeof windowId)}>
          {WINDOWS.map((w) => (
            <option key={w.id} value={w.id}>
              {w.label}
            </option>
          ))}
        </select>
        <button type="button" className="ghost small" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <ErrorLine error={error} />
      {stats && (
        <>
          <ul className="tiles" aria-label="Headline figures">
            {[...summarize(stats), ...(queue ? [reviewTile(queue)] : [])].map((t) => (
              <li key={t.label} className="tile card">
                <span className="tile-label">{t.label}</span>
                <span className="tile-value" data-testid={`tile-${t.label}`}>
                  {t.value}
                </span>
                <span className="muted small">{t.detail}</span>
              </li>
            ))}
            <SafetyFlagsTile api={api} window={stats.window} />
            <ResponseCacheTile cache={stats.cache} />
          </ul>
          <div className="charts">
            <LineChart
              title="Traffic per expert"
              unit={`requests per ${stats.window.bucket_s >= 3600 ? `${stats.window.bucket_s / 3600} h` : `${stats.window.bucket_s / 60} min`}`}
              labels={stats.traffic.buckets.map((b) => bucketLabel(b, stats.window.bucket_s))}
              series={stats.traffic.series.map((s) => ({ name: s.expert, values: s.counts }))}
            />
            <BarChart
              title="Routing confidence"
              unit="requests per confidence band"
              columns={["Confidence", "Requests"]}
              bars={stats.confidence.map((c) => ({ label: `${c.low.toFixed(1)}–${c.high.toFixed(1)}`, value: c.count }))}
            />
            <BarChart
              title="Latency per stage (p50 inside p95)"
              unit="milliseconds"
              format={ms}
              columns={["Stage", "p50", "p95"]}
              bars={perStage.map((l) => ({ label: l.stage, value: l.p95_ms, inner: l.p50_ms }))}
            />
            <BarChart
              title="Latency per expert, whole request (p50 inside p95)"
              unit="milliseconds"
              format={ms}
              columns={["Expert", "p50", "p95"]}
              bars={perExpert.map((l) => ({ label: l.expert, value: l.p95_ms, inner: l.p50_ms, color: seriesColor(l.expert) }))}
            />
            <BarChart
              title="Tokens per team"
              unit="tokens"
              columns={["Team", "Tokens"]}
              bars={stats.teams.map((t) => ({ label: t.team ?? "(no team)", value: t.prompt_tokens + t.completion_tokens }))}
            />
          </div>
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Usage per team (scrolls at narrow widths)">
            <GridTable label="Usage per team" columns={["Team", "Requests", "Prompt tokens", "Completion tokens", "Cost", "Quota rejections", "Degraded"]}>
              {stats.teams.map((t) => (
                <tr key={t.team ?? ""}>
                  <th scope="row">{t.team ?? "(no team)"}</th>
                  <td>{t.requests}</td>
                  <td>{t.prompt_tokens}</td>
                  <td>{t.completion_tokens}</td>
                  <td>{t.cost_usd === null ? "no price set" : `$${t.cost_usd.toFixed(4)}`}</td>
                  <td>{t.quota_rejected}</td>
                  <td>{t.degraded}</td>
                </tr>
              ))}
            </GridTable>
          </div>
          <div className="charts">
            <section className="card" aria-labelledby={`${id}-dead`}>
              <h3 id={`${id}-dead`}>Dead experts</h3>
              {stats.dead_experts.length === 0 ? (
                <p className="small">Every expert had traffic in this window.</p>
              ) : (
                <ul className="dead" data-testid="dead-experts">
                  {stats.dead_experts.map((e) => (
                    <li key={e}>
                      <span className={`badge expert-${e}`}>{e}</span> no requests in this window
                    </li>
                  ))}
                </ul>
              )}
            </section>
            <section className="card" aria-labelledby={`${id}-br`}>
              <h3 id={`${id}-br`}>Circuit breakers</h3>
              <table className="grid small" aria-label="Circuit breakers">
                <thead>
                  <tr>
                    <th scope="col">Expert</th>
                    <th scope="col">State</th>
                    <th scope="col">Failures in a row</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.breakers.map((b) => (
                    <tr key={b.expert}>
                      <th scope="row">{b.expert}</th>
                      <td>
                        <span className={`state state-${b.state}`}>
                          {b.state.replace("_", " ")}
                          {b.state === "open" && b.retry_in_s > 0 ? ` (probe in ${Math.ceil(b.retry_in_s)} s)` : ""}
                        </span>
                      </td>
                      <td>{b.consecutive_failures}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <p className="muted small">Breakers are kept per server process; this is the one that answered.</p>
            </section>
          </div>
          <p className="muted small">
            Percentiles from the latest {stats.latency_samples} requests of the window. Figures come from the audit trail.
          </p>
        </>
      )}
    </section>
  );
}

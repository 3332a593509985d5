import type { RateLimit } from "../api/stream";
import type { LimitUsage } from "../api/types";

const LIMIT_NAMES: Record<string, string> = {
  requests_per_minute: "Requests this minute",
  tokens_per_day: "Tokens today",
  tokens_per_month: "Tokens this month",
};

/** "in 3 h 20 min", "in 45 s": when a limit's window starts again. */
export function resetText(seconds: number): string {
  if (seconds < 60) return `in ${seconds} s`;
  if (seconds < 3600) return `in ${Math.ceil(seconds / 60)} min`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return m ? `in ${h} h ${m} min` : `in ${h} h`;
}

interface Props {
  usage: LimitUsage[] | null; // null: not loaded (or the server has no /me/usage)
  live: RateLimit[]; // from the last answer's x-ratelimit-* headers
}

/** How much of my quota is left: one meter per limit that applies to me (user, team,
 * global), from GET /api/v1/me/usage, refreshed after every answer. */
export function QuotaMeter({ usage, live }: Props) {
  if (usage === null) return null;
  return (
    <section className="quota" aria-label="My quota">
      <h2 className="quota-title">My quota</h2>
      {usage.length === 0 && <p className="muted small">No limits apply to you.</p>}
      {usage.map((u) => {
        const left = u.max ? Math.max(0, Math.min(1, u.remaining / u.max)) : 0;
        const name = LIMIT_NAMES[u.limit] ?? u.limit;
        return (
          <div key={`${u.subject}-${u.limit}`} className="quota-row">
            <div className="quota-label small">
              <span>
                {name} <span className="muted">({u.subject})</span>
              </span>
              <span>
                {u.remaining.toLocaleString("en-US")} / {u.max.toLocaleString("en-US")} left
              </span>
            </div>
            <div
              className={`quota-bar${left < 0.1 ? " low" : ""}`}
              role="meter"
              aria-label={`${name} left for ${u.subject}`}
              aria-valuemin={0}
              aria-valuemax={u.max}
              aria-valuenow={u.remaining}
              aria-valuetext={`${u.remaining} of ${u.max} left, resets ${resetText(u.reset_s)}`}
            >
              <span style={{ width: `${left * 100}%` }} />
            </div>
            <div className="muted small">
              resets {resetText(u.reset_s)}
              {u.on_limit === "degrade" ? "; then the generalist answers" : ""}
            </div>
          </div>
        );
      })}
      {live.length > 0 && (
        <p className="muted small" data-testid="ratelimit-headers">
          Last answer:{" "}
          {live.map((l) => `${l.remaining} of ${l.limit} ${l.kind} left (resets in ${l.reset})`).join("; ")}
        </p>
      )}
    </section>
  );
}

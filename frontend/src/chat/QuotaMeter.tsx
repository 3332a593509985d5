import type { LimitUsage } from "../api/types";

/** What each limit counts, worded to follow a number: "12 requests left this minute". */
const LIMITS: Record<string, { label: string; unit: string; window: string }> = {
  requests_per_minute: { label: "Requests this minute", unit: "requests", window: "this minute" },
  tokens_per_day: { label: "Tokens today", unit: "tokens", window: "today" },
  tokens_per_month: { label: "Tokens this month", unit: "tokens", window: "this month" },
};

/** "in 3 h 20 min", "in 45 s": when a limit's window starts again. */
export function resetText(seconds: number): string {
  if (seconds < 60) return `in ${seconds} s`;
  if (seconds < 3600) return `in ${Math.ceil(seconds / 60)} min`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return m ? `in ${h} h ${m} min` : `in ${h} h`;
}

/** Whose limit it is, in words: "your limit", "team eng's limit", "everyone's limit". */
export function subjectText(subject: string): string {
  const [scope, ...rest] = subject.split(":");
  const name = rest.join(":");
  if (scope === "user") return "your limit";
  if (scope === "team") return `team ${name}'s limit`;
  if (scope === "global") return "everyone's limit";
  return subject;
}

interface Props {
  usage: LimitUsage[] | null; // null: not loaded (or the server has no /me/usage)
}

/**
 * How much of my quota is left: per limit that applies to me (user, team, global), one
 * number, what is left, from GET /api/v1/me/usage, reloaded after every answer. (The
 * limit itself is in the meter's accessible value and its tooltip.)
 */
export function QuotaMeter({ usage }: Props) {
  if (usage === null) return null;
  return (
    <section className="quota" aria-label="My quota">
      <h2 className="quota-title">My quota</h2>
      {usage.length === 0 && <p className="muted small">No limits apply to you.</p>}
      {usage.map((u) => {
        const left = u.max ? Math.max(0, Math.min(1, u.remaining / u.max)) : 0;
        const words = LIMITS[u.limit] ?? { label: u.limit, unit: "", window: "" };
        const whose = subjectText(u.subject);
        const headline = `${u.remaining.toLocaleString("en-US")} ${words.unit} left ${words.window}`.replace(/\s+/g, " ").trim();
        return (
          <div
            key={`${u.subject}-${u.limit}`}
            className="quota-row"
            title={`${u.remaining.toLocaleString("en-US")} of ${u.max.toLocaleString("en-US")} left (${whose})`}
          >
            <div className="quota-label small" data-testid="quota-left">
              {headline}
            </div>
            <div
              className={`quota-bar${left < 0.1 ? " low" : ""}`}
              role="meter"
              aria-label={`${words.label} left (${whose})`}
              aria-valuemin={0}
              aria-valuemax={u.max}
              aria-valuenow={u.remaining}
              aria-valuetext={`${u.remaining} of ${u.max} left, resets ${resetText(u.reset_s)}`}
            >
              <span style={{ width: `${left * 100}%` }} />
            </div>
            <div className="muted small">
              {whose} · resets {resetText(u.reset_s)}
              {u.on_limit === "degrade" ? "; then the generalist answers" : ""}
            </div>
          </div>
        );
      })}
    </section>
  );
}

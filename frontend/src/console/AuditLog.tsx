import { useCallback, useEffect, useId, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import type { AuditEvent, AuditEventDetail, AuditQuery, ModelCard } from "../api/types";
import { navigate } from "../location";
import { AuditTrace } from "./AuditTrace";
import { useMediaQuery } from "./media";
import { Modal } from "./Modal";
import { ErrorLine, GridTable } from "./Table";
import { usePagedList } from "./usePagedList";

const OUTCOMES = ["", "ok", "refused", "error", "aborted"] as const;
const REASONS = ["", "routed", "requested", "context", "low_confidence", "out_of_domain", "overflow", "not_allowed", "fallback"];

const FIELDS = ["since", "until", "user", "team", "expert", "outcome", "reason", "request_id", "q"] as const;
type Filters = Record<(typeof FIELDS)[number], string>;
const NO_FILTERS = Object.fromEntries(FIELDS.map((f) => [f, ""])) as Filters;

/** datetime-local gives local wall time; the API wants an instant (ISO 8601, UTC). */
function toInstant(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The API query for the form's values (blank fields are left out). */
export function toQuery(f: Filters): AuditQuery {
  const q: AuditQuery = {};
  if (f.since) q.since = toInstant(f.since);
  if (f.until) q.until = toInstant(f.until);
  for (const k of ["user", "team", "expert", "reason", "request_id", "q"] as const) {
    const v = f[k].trim();
    if (v) q[k] = v;
  }
  if (f.outcome) q.outcome = f.outcome as AuditQuery["outcome"];
  return q;
}

function eventKey(e: AuditEvent): string {
  return String(e.seq);
}

export function AuditLog({ api, models, detail }: { api: Api; models: ModelCard[]; detail: string | null }) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<AuditQuery>({});
  const [exportError, setError] = useState<string | null>(null);
  const [opened, setOpened] = useState<AuditEventDetail | null>(null);
  const [openError, setOpenError] = useState<string | null>(null);
  const id = useId();
  // Below 1000px there is no room beside the table, and below it is out of sight (on a
  // phone, a tap seemed to do nothing): the trace opens over the table instead.
  const narrow = useMediaQuery("(max-width: 999px)");
  const closeTrace = () => navigate("/console/audit");

  // The trace comes from GET /admin/audit/{seq}: the whole payload and an integrity check.
  useEffect(() => {
    setOpened(null);
    setOpenError(null);
    const seq = detail ? Number(detail) : NaN;
    if (!Number.isInteger(seq)) return;
    let cancelled = false;
    api.auditEvent(seq).then(
      (event) => !cancelled && setOpened(event),
      (err) => !cancelled && setOpenError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      cancelled = true;
    };
  }, [api, detail]);

  const fetchPage = useCallback(
    (cursor?: string) => api.audit({ ...applied, limit: 50, ...(cursor ? { cursor } : {}) }),
    [api, applied],
  );
  const list = usePagedList<AuditEvent>(fetchPage);
  const { items: events, status } = list;
  const listError = list.error instanceof Error ? list.error.message : list.error ? String(list.error) : null;
  const error = listError ?? exportError;

  function submit(e: FormEvent) {
    e.preventDefault();
    setApplied(toQuery(filters));
  }

  async function exportAs(format: "jsonl" | "csv") {
    try {
      const { cursor: _cursor, limit: _limit, ...filters } = applied;
      const blob = await api.auditExport({ ...filters, format });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `expertgate-audit.${format}`;
      a.click();
      URL.revokeObjectURL(url);
    } catch (err) {
      setError(`Export failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  if (status === "missing") {
    return (
      <section className="card">
        <h2>Audit log</h2>
        <p>This server does not offer the audit API yet (<code>/api/v1/admin/audit</code>).</p>
      </section>
    );
  }
  if (status === "forbidden") {
    return (
      <section className="card">
        <h2>Audit log</h2>
        <p>The audit log is for admins and auditors; your key has neither role.</p>
      </section>
    );
  }

  const field = (name: keyof Filters, label: string, type = "text") => (
    <div className="field">
      <label htmlFor={`${id}-${name}`}>{label}</label>
      <input
        id={`${id}-${name}`}
        type={type}
        value={filters[name]}
        onChange={(e) => setFilters({ ...filters, [name]: e.target.value })}
      />
    </div>
  );
  const choice = (name: keyof Filters, label: string, options: readonly string[]) => (
    <div className="field">
      <label htmlFor={`${id}-${name}`}>{label}</label>
      <select
        id={`${id}-${name}`}
        value={filters[name]}
        onChange={(e) => setFilters({ ...filters, [name]: e.target.value })}
      >
        {options.map((o) => (
          <option key={o} value={o}>
            {o || "any"}
          </option>
        ))}
      </select>
    </div>
  );

  return (
    <section aria-labelledby={`${id}-h`} className="audit">
      <h2 id={`${id}-h`}>Audit log</h2>
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        {field("since", "From", "datetime-local")}
        {field("until", "Until", "datetime-local")}
        {field("user", "User (email)")}
        {field("team", "Team")}
        {choice("expert", "Expert", ["", ...models.map((m) => m.id).filter((m) => m !== "auto")])}
        {choice("outcome", "Outcome", OUTCOMES)}
        {choice("reason", "Reason", REASONS)}
        {field("request_id", "Request id")}
        {field("q", "Text in prompt or answer", "search")}
        <div className="row filter-actions">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            className="ghost"
            onClick={() => {
              setFilters(NO_FILTERS);
              setApplied({});
            }}
          >
            Clear
          </button>
          <button type="button" className="ghost" onClick={() => void exportAs("jsonl")}>
            Export JSONL
          </button>
          <button type="button" className="ghost" onClick={() => void exportAs("csv")}>
            Export CSV
          </button>
        </div>
      </form>
      <ErrorLine error={error} />
      {openError && (
        <p className="error" role="alert">
          Event {detail}: {openError}
        </p>
      )}
      <div className="audit-body">
        <div className="table-wrap">
          <GridTable label="Audit events" columns={["#", "Time", "User", "Action", "Expert", "Reason", "Outcome"]}>
            {events.map((e) => (
              <tr key={eventKey(e)} className={detail === eventKey(e) ? "selected" : undefined} data-request-id={e.request_id ?? ""}>
                <td>
                  <a
                    href={`/console/audit/${eventKey(e)}`}
                    aria-label={`Open event ${e.seq}`}
                    onClick={(ev) => {
                      ev.preventDefault();
                      navigate(`/console/audit/${eventKey(e)}`);
                    }}
                  >
                    {e.seq}
                  </a>
                </td>
                <td>
                  {e.ts ? <time dateTime={e.ts}>{new Date(e.ts).toLocaleString()}</time> : "unreadable"}
                  {e.unreadable && (
                    <span className="badge error" title={e.unreadable.problem}>
                      corrupted row
                    </span>
                  )}
                </td>
                <td>{e.user_email ?? "—"}</td>
                <td>{e.action}</td>
                <td>{e.expert ? <span className={`badge expert-${e.expert}`}>{e.expert}</span> : "—"}</td>
                <td>{e.reason ?? "—"}</td>
                <td className={`outcome-${e.outcome}`}>{e.outcome}</td>
              </tr>
            ))}
          </GridTable>
          {status === "ready" && events.length === 0 && <p className="muted">No events match.</p>}
          {status === "loading" && <p className="muted">Loading…</p>}
          {list.hasMore && (
            <button type="button" className="ghost" disabled={list.loadingMore} onClick={() => void list.loadMore()}>
              Load older events
            </button>
          )}
        </div>
        {opened && !narrow && <AuditTrace event={opened} onClose={closeTrace} />}
      </div>
      {opened && narrow && (
        <Modal labelledBy="trace-h" onCancel={closeTrace} className="trace-sheet" testId="audit-trace-dialog">
          <AuditTrace event={opened} onClose={closeTrace} />
        </Modal>
      )}
    </section>
  );
}

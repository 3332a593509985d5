import { useCallback, useId, useState } from "react";

import type { Api } from "../api/client";
import type { AuditEvent, FeedbackEntry, FeedbackQuery, ModelCard } from "../api/types";
import { navigate } from "../location";
import { ErrorLine } from "./Table";
import { usePagedList } from "./usePagedList";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The event a feedback's trace link opens: the request itself, not the feedback's own event. */
export function traceOf(events: readonly AuditEvent[]): AuditEvent | null {
  return events.find((e) => !e.action.startsWith("feedback.")) ?? events[0] ?? null;
}

/** Users' ratings and comments, newest first, each with a link to its request's audit trace. */
export function Feedback({ api, models }: { api: Api; models: ModelCard[] }) {
  const [query, setQuery] = useState<FeedbackQuery>({});
  const [traceError, setTraceError] = useState<string | null>(null);
  const id = useId();
  const fetchPage = useCallback(
    (cursor?: string) => api.feedbackLog({ ...query, limit: 50, ...(cursor ? { cursor } : {}) }),
    [api, query],
  );
  const list = usePagedList<FeedbackEntry>(fetchPage);
  const { items: entries, status } = list;
  const error = list.error ? `Could not load the feedback: ${message(list.error)}` : traceError;

  async function openTrace(entry: FeedbackEntry) {
    try {
      const page = await api.audit({ request_id: entry.request_id, limit: 20 });
      const event = traceOf(page.data);
      if (event) navigate(`/console/audit/${event.seq}`);
      else setTraceError(`No audit event has request id ${entry.request_id}.`);
    } catch (err) {
      setTraceError(`Could not open the trace: ${message(err)}`);
    }
  }

  if (status === "missing" || status === "forbidden") {
    return (
      <section className="card">
        <h2>Feedback</h2>
        <p>
          {status === "missing"
            ? "This server does not offer the feedback API yet (/api/v1/admin/feedback)."
            : "Feedback is for admins and auditors; your key has neither role."}
        </p>
      </section>
    );
  }

  const experts = models.map((m) => m.id).filter((m) => m !== "auto");
  return (
    <section aria-labelledby={`${id}-h`} className="feedback-log">
      <h2 id={`${id}-h`}>Feedback</h2>
      <p className="muted small">
        What users said about answers: thumbs up or down, their comment, and the expert they say it should have gone
        to. Thumbs-down without an expert also waits in the Router tab to be relabelled.
      </p>
      <form className="filters" aria-label="Filter the feedback" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={`${id}-rating`}>Rating</label>
          <select
            id={`${id}-rating`}
            value={query.rating ?? ""}
            onChange={(e) => setQuery({ ...query, rating: (e.target.value || undefined) as FeedbackQuery["rating"] })}
          >
            <option value="">any</option>
            <option value="up">thumbs up</option>
            <option value="down">thumbs down</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-expert`}>Expert that answered</label>
          <select id={`${id}-expert`} value={query.expert ?? ""} onChange={(e) => setQuery({ ...query, expert: e.target.value || undefined })}>
            <option value="">any</option>
            {experts.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        </div>
        <label className="check">
          <input
            type="checkbox"
            checked={query.with_comment ?? false}
            onChange={(e) => setQuery({ ...query, with_comment: e.target.checked || undefined })}
          />{" "}
          with a comment only
        </label>
      </form>
      <ErrorLine error={error} />
      {status === "loading" && <p className="muted">Loading…</p>}
      {status === "ready" && entries.length === 0 && <p className="muted">No feedback matches.</p>}
      <ol className="feedback-list" aria-label="Feedback">
        {entries.map((f) => (
          <li key={f.id} className="card feedback-entry" data-request-id={f.request_id}>
            <div className="row spread">
              <span className={`rating rating-${f.rating}`}>{f.rating === "up" ? "Thumbs up" : "Thumbs down"}</span>
              <time className="muted small" dateTime={f.created_at}>
                {new Date(f.created_at).toLocaleString()}
              </time>
            </div>
            {f.comment ? (
              <blockquote className="feedback-comment">{f.comment}</blockquote>
            ) : (
              <p className="muted small">No comment.</p>
            )}
            <dl className="facts small">
              <dt>Expert</dt>
              <dd>
                {f.routed_expert ? <span className={`badge expert-${f.routed_expert}`}>{f.routed_expert}</span> : "—"}
                {f.expected_expert && f.expected_expert !== f.routed_expert && <> · user says: {f.expected_expert}</>}
              </dd>
              <dt>Question</dt>
              <dd>{f.question ?? <span className="muted">deleted with its conversation</span>}</dd>
              <dt>From</dt>
              <dd>{f.user_email ?? "—"}</dd>
              {(f.resolved || f.rating === "down") && (
                <>
                  <dt>Status</dt>
                  <dd>{f.resolved ? "a training example" : "waiting for a relabel"}</dd>
                </>
              )}
            </dl>
            <button type="button" className="link" onClick={() => void openTrace(f)}>
              Audit trace of this answer
            </button>
          </li>
        ))}
      </ol>
      {list.hasMore && (
        <button type="button" className="ghost" disabled={list.loadingMore} onClick={() => void list.loadMore()}>
          Load older feedback
        </button>
      )}
    </section>
  );
}

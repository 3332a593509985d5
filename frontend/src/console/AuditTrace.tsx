import type { AuditEventDetail } from "../api/types";
import { Bars } from "./Bars";

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null;
}

function numbers(v: unknown): Record<string, number> {
  const o = obj(v);
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, number] => typeof e[1] === "number"));
}

/** One request's full trace: routing, timings, fallbacks, guard findings, raw payload. */
export function AuditTrace({ event, onClose }: { event: AuditEventDetail; onClose: () => void }) {
  const p = event.payload ?? {};
  const route = obj(p.route);
  const probabilities = numbers(route?.probabilities);
  const latency = numbers(p.latency_ms);
  const fallbacks = Array.isArray(p.fallbacks) ? (p.fallbacks as Json[]) : [];
  const guard = obj(p.guard);
  const llm = obj(p.llm);
  const retrieval = obj(p.retrieval);
  const err = obj(p.error);
  const integrity = event.integrity;
  const intact = integrity.hash_ok && integrity.links_to_previous && integrity.content_ok !== false;
  return (
    <aside className="trace card" aria-labelledby="trace-h" data-testid="audit-trace">
      <div className="row spread">
        <h3 id="trace-h">
          Event {event.seq} · {event.action}
        </h3>
        <button type="button" className="ghost small" onClick={onClose}>
          Close
        </button>
      </div>
      <dl className="facts">
        <dt>Request</dt>
        <dd>
          <code>{event.request_id ?? "—"}</code>
        </dd>
        <dt>When</dt>
        <dd>{event.ts ? new Date(event.ts).toLocaleString() : "unreadable timestamp"}</dd>
        {event.unreadable && (
          <>
            <dt>Row</dt>
            <dd className="error" data-testid="unreadable">
              corrupted ({event.unreadable.kind}): {event.unreadable.problem}
            </dd>
          </>
        )}
        {event.text_withheld && (
          <>
            <dt>Text</dt>
            <dd className="muted">withheld: the answer cites documents outside your groups</dd>
          </>
        )}
        <dt>Who</dt>
        <dd>
          {event.user_email ?? "—"} {event.team ? `(${event.team})` : ""} via {event.channel}
        </dd>
        <dt>Outcome</dt>
        <dd>
          {event.outcome} {event.status ? `(HTTP ${event.status})` : ""}
        </dd>
        <dt>Expert</dt>
        <dd>
          {event.expert ?? "—"} {event.reason ? `· ${event.reason}` : ""}
        </dd>
        <dt>Integrity</dt>
        <dd className={intact ? undefined : "error"} data-testid="integrity">
          {intact ? "hash chain intact" : `tampered: ${integrity.problem ?? "hash mismatch"}`}
          {integrity.content_ok === null && " (text purged by retention)"}
        </dd>
        {llm && (
          <>
            <dt>Model</dt>
            <dd>
              <code>{String(llm.upstream_model ?? llm.model ?? "—")}</code>
            </dd>
          </>
        )}
      </dl>
      {err && (
        <p className="error">
          {String(err.code ?? "")}: {String(err.message ?? "")}
        </p>
      )}
      {Object.keys(probabilities).length > 0 && (
        <>
          <h4>Routing probabilities</h4>
          <Bars values={probabilities} />
        </>
      )}
      {Object.keys(latency).length > 0 && (
        <>
          <h4>Timings</h4>
          <table className="grid compact">
            <tbody>
              {Object.entries(latency).map(([stage, ms]) => (
                <tr key={stage}>
                  <th scope="row">{stage}</th>
                  <td>{ms.toFixed(1)} ms</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {fallbacks.length > 0 && (
        <>
          <h4>Fallbacks</h4>
          <ul>
            {fallbacks.map((f, i) => (
              <li key={i}>
                {String(f.expert)}: {String(f.error)}
              </li>
            ))}
          </ul>
        </>
      )}
      {guard && (
        <>
          <h4>Guard</h4>
          <pre className="json">{JSON.stringify(guard, null, 2)}</pre>
        </>
      )}
      {retrieval && (
        <>
          <h4>Retrieval</h4>
          <pre className="json">{JSON.stringify(retrieval, null, 2)}</pre>
        </>
      )}
      {event.prompt && (
        <>
          <h4>Prompt</h4>
          <blockquote className="passage">{event.prompt}</blockquote>
        </>
      )}
      {event.answer && (
        <>
          <h4>Answer</h4>
          <blockquote className="passage">{event.answer}</blockquote>
        </>
      )}
      <details>
        <summary>Raw event</summary>
        <pre className="json">{JSON.stringify(event, null, 2)}</pre>
      </details>
    </aside>
  );
}

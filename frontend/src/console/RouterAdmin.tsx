import { useCallback, useEffect, useId, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { FeedbackItem, GateVersion, ModelCard, RouterStatus } from "../api/types";
import { ErrorLine, GridTable } from "./Table";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The numeric metrics of a version, short: "accuracy 0.94 · ece 0.03". */
export function metricSummary(metrics: Record<string, unknown>): string {
  return Object.entries(metrics)
    .filter((e): e is [string, number] => typeof e[1] === "number")
    .slice(0, 5)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
    .join(" · ");
}

/** Gate versions (promote, shadow, rollback, train) and the feedback queue to relabel. */
export function RouterAdmin({ api, models }: { api: Api; models: ModelCard[] }) {
  const [status, setStatus] = useState<RouterStatus | null>(null);
  const [queue, setQueue] = useState<FeedbackItem[]>([]);
  const [labels, setLabels] = useState<Record<string, string>>({});
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [promoteAfter, setPromoteAfter] = useState(false);
  const id = useId();
  const domains = models.map((m) => m.id).filter((m) => m !== "auto");

  const load = useCallback(async () => {
    try {
      const [s, q] = await Promise.all([api.routerStatus(), api.feedbackQueue()]);
      setStatus(s);
      setQueue(q);
      setError(null);
    } catch (err) {
      setError(
        err instanceof ApiError && err.missingEndpoint
          ? "This server does not offer the router admin API yet."
          : `Could not load the router status: ${message(err)}`,
      );
    }
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(label: string, fn: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      await fn();
      setNote(label);
      await load();
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  }

  const version = (v: GateVersion) => (
    <tr key={v.version}>
      <td>
        <code>{v.version}</code>
        {v.active && <span className="tag">active</span>}
        {v.shadow && <span className="tag">shadow</span>}
      </td>
      <td>{new Date(v.created_at).toLocaleString()}</td>
      <td>{v.architecture}</td>
      <td className="small">{metricSummary(v.metrics)}</td>
      <td>
        <div className="row">
        {!v.active && (
          <button type="button" className="ghost small" disabled={busy} onClick={() => void act(`Promoted ${v.version}.`, () => api.promoteRouter(v.version))}>
            Promote
          </button>
        )}
        {!v.active && !v.shadow && (
          <button type="button" className="ghost small" disabled={busy} onClick={() => void act(`${v.version} now runs in shadow.`, () => api.shadowRouter(v.version))}>
            Shadow
          </button>
        )}
        {v.shadow && (
          <button type="button" className="ghost small" disabled={busy} onClick={() => void act("Shadow stopped.", () => api.shadowRouter(null))}>
            Stop shadow
          </button>
        )}
        </div>
      </td>
    </tr>
  );

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Router</h2>
      <ErrorLine error={error} />
      {note && (
        <p role="status" className="muted">
          {note}
        </p>
      )}
      {status && (
        <>
          <dl className="facts card">
            <dt>Serving</dt>
            <dd>
              <code>{status.serving}</code>
            </dd>
            <dt>Shadow</dt>
            <dd>
              {status.shadow ? (
                <>
                  <code>{status.shadow}</code>: agrees on{" "}
                  {status.shadow_agreement === null ? "—" : `${(status.shadow_agreement * 100).toFixed(1)}%`} of{" "}
                  {status.shadow_compared} requests
                </>
              ) : (
                "none"
              )}
            </dd>
          </dl>
          <div className="row">
            <button type="button" className="ghost" disabled={busy} onClick={() => void act("Rolled back.", () => api.rollbackRouter())}>
              Roll back
            </button>
            <button
              type="button"
              disabled={busy}
              onClick={() =>
                void act("Trained a new version.", async () => {
                  const r = await api.trainRouter(promoteAfter);
                  setNote(`Trained ${r.version} on ${r.n_examples} examples${r.promoted ? " and promoted it" : ""}.`);
                })
              }
            >
              {busy ? "Working…" : "Train a new version"}
            </button>
            <label>
              <input type="checkbox" checked={promoteAfter} onChange={(e) => setPromoteAfter(e.target.checked)} /> promote
              it when it validates
            </label>
          </div>
          <div className="table-wrap">
            <GridTable label="Router versions" columns={["Version", "Created", "Model", "Validation", <span className="sr-only">Actions</span>]}>
              {status.versions.map(version)}
            </GridTable>
          </div>
        </>
      )}
      <h3>Feedback and misroutes</h3>
      {queue.length === 0 ? (
        <p className="muted">No feedback waiting.</p>
      ) : (
        <div className="table-wrap">
          <GridTable label="Feedback queue" columns={["Question", "Rating", "Routed to", "User says", "Comment", "Relabel as"]}>
            {queue.map((f) => {
              const chosen = labels[f.request_id] ?? f.expected_expert ?? f.routed_expert ?? "";
              return (
                <tr key={f.id} data-request-id={f.request_id}>
                  <td>{f.question}</td>
                  <td>{f.rating === "up" ? "good" : "bad"}</td>
                  <td>{f.routed_expert ?? "—"}</td>
                  <td>{f.expected_expert ?? "—"}</td>
                  <td>{f.comment ?? ""}</td>
                  <td>
                    <div className="row">
                    <select
                      aria-label={`Domain for: ${f.question}`}
                      value={chosen}
                      onChange={(e) => setLabels({ ...labels, [f.request_id]: e.target.value })}
                    >
                      {domains.map((d) => (
                        <option key={d}>{d}</option>
                      ))}
                    </select>
                    <button
                      type="button"
                      className="ghost small"
                      disabled={busy || !chosen}
                      onClick={() => void act(`Relabelled as ${chosen}; it trains the next version.`, () => api.relabel(f.request_id, chosen))}
                    >
                      Relabel
                    </button>
                    </div>
                  </td>
                </tr>
              );
            })}
          </GridTable>
        </div>
      )}
    </section>
  );
}

import { useCallback, useEffect, useId, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { FeedbackItem, GateVersion, ModelCard, RouterStatus } from "../api/types";
import { ConfirmDialog } from "./ConfirmDialog";
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

/** A change to the routing every request goes through: asked for, then confirmed. */
type Change =
  | { kind: "promote"; version: string }
  | { kind: "rollback"; target: string }
  | { kind: "shadow"; version: string }
  | { kind: "stop-shadow"; version: string }
  | { kind: "train-promote" };

/** The version a rollback re-activates, or null when there is none: the server says
 * (`rollback_to`); a server that does not, is asked only when it lists two versions. */
export function rollbackTarget(status: RouterStatus): string | null {
  if (status.rollback_to !== undefined) return status.rollback_to;
  return status.versions.length >= 2 ? "the previously promoted version" : null;
}

/** The confirmation's title, what will change (in words), and its button. */
export function describeChange(change: Change, status: RouterStatus): { title: string; body: string; confirm: string } {
  const serving = status.active ?? status.serving;
  switch (change.kind) {
    case "promote":
      return {
        title: `Promote ${change.version}?`,
        body: `Every request from every user and channel (web, API, Slack) will be routed by ${change.version} instead of ${serving}, starting now. The change is audited; you can roll back to ${serving}.`,
        confirm: `Promote ${change.version}`,
      };
    case "rollback":
      return {
        title: "Roll back the router?",
        body: `Every request from every user and channel will be routed by ${change.target} again instead of ${serving}, starting now. The change is audited.`,
        confirm: `Roll back to ${change.target}`,
      };
    case "shadow":
      return {
        title: `Run ${change.version} in shadow?`,
        body: `${change.version} will also route every request, beside ${serving}, to measure how often they agree. Answers still follow ${serving}.${status.shadow ? ` It replaces the current shadow, ${status.shadow}.` : ""}`,
        confirm: `Shadow ${change.version}`,
      };
    case "stop-shadow":
      return {
        title: `Stop the shadow run of ${change.version}?`,
        body: `${change.version} stops routing requests beside ${serving}; the agreement figures stop growing. Answers are unchanged.`,
        confirm: "Stop shadow",
      };
    case "train-promote":
      return {
        title: "Train and promote a new version?",
        body: `A new version is trained on the seed examples and every relabel. If it validates, it replaces ${serving} for every request from every user and channel as soon as training ends.`,
        confirm: "Train and promote",
      };
  }
}

/** Gate versions (promote, shadow, rollback, train) and the feedback queue to relabel.
 * Every change to company-wide routing waits for a confirmation that says what changes. */
export function RouterAdmin({ api, models }: { api: Api; models: ModelCard[] }) {
  const [status, setStatus] = useState<RouterStatus | null>(null);
  const [queue, setQueue] = useState<FeedbackItem[]>([]);
  const [labels, setLabels] = useState<Record<string, string>>({});
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [promoteAfter, setPromoteAfter] = useState(false);
  const [pending, setPending] = useState<Change | null>(null);
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

  function train() {
    void act("Trained a new version.", async () => {
      const r = await api.trainRouter(promoteAfter);
      setNote(`Trained ${r.version} on ${r.n_examples} examples${r.promoted ? " and promoted it" : ""}.`);
    });
  }

  function perform(change: Change) {
    setPending(null);
    switch (change.kind) {
      case "promote":
        return void act(`Promoted ${change.version}.`, () => api.promoteRouter(change.version));
      case "rollback":
        return void act(`Rolled back to ${change.target}.`, () => api.rollbackRouter());
      case "shadow":
        return void act(`${change.version} now runs in shadow.`, () => api.shadowRouter(change.version));
      case "stop-shadow":
        return void act("Shadow stopped.", () => api.shadowRouter(null));
      case "train-promote":
        return train();
    }
  }

  const rollbackTo = status ? rollbackTarget(status) : null;

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
          <button type="button" className="ghost small" disabled={busy} onClick={() => setPending({ kind: "promote", version: v.version })}>
            Promote
          </button>
        )}
        {!v.active && !v.shadow && (
          <button type="button" className="ghost small" disabled={busy} onClick={() => setPending({ kind: "shadow", version: v.version })}>
            Shadow
          </button>
        )}
        {v.shadow && (
          <button type="button" className="ghost small" disabled={busy} onClick={() => setPending({ kind: "stop-shadow", version: v.version })}>
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
            <button
              type="button"
              className="ghost"
              disabled={busy || rollbackTo === null}
              title={rollbackTo === null ? "Nothing to roll back to: no version was promoted before the current one" : `Route every request with ${rollbackTo} again`}
              aria-describedby={`${id}-rollback-help`}
              onClick={() => rollbackTo && setPending({ kind: "rollback", target: rollbackTo })}
            >
              Roll back
            </button>
            <button type="button" disabled={busy} onClick={() => (promoteAfter ? setPending({ kind: "train-promote" }) : train())}>
              {busy ? "Working…" : "Train a new version"}
            </button>
            <label>
              <input type="checkbox" checked={promoteAfter} onChange={(e) => setPromoteAfter(e.target.checked)} /> promote
              it when it validates
            </label>
          </div>
          <p id={`${id}-rollback-help`} className="muted small">
            {rollbackTo === null
              ? "Roll back is off: no version was promoted before the current one, so there is nothing to go back to."
              : `Roll back re-activates ${rollbackTo}, the version promoted before the current one.`}
          </p>
          <div className="table-wrap">
            <GridTable label="Router versions" columns={["Version", "Created", "Model", "Validation", <span className="sr-only">Actions</span>]}>
              {status.versions.map(version)}
            </GridTable>
          </div>
        </>
      )}
      {pending && status && (
        <ConfirmDialog
          title={describeChange(pending, status).title}
          confirmLabel={describeChange(pending, status).confirm}
          onConfirm={() => perform(pending)}
          onCancel={() => setPending(null)}
        >
          <p>{describeChange(pending, status).body}</p>
        </ConfirmDialog>
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

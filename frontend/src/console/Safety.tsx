// Requests the input safety check flagged (docs/safety.md, issue 23): admins and
// auditors read them, filtered; admins relabel them (benign = a false positive, or the
// right category), and the labels go out as training data (JSONL, router/safety/data's
// format). Each flag links to its request's audit trace when that is chained.
import { useCallback, useId, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { ModelCard, SafetyFlag, SafetyFlagQuery, SafetyLabel } from "../api/types";
import { navigate } from "../location";
import { ErrorLine } from "./Table";
import { usePagedList } from "./usePagedList";
import "./Safety.css";

const CATEGORIES = ["injection", "jailbreak", "extraction"] as const;
const ACTIONS = ["allow", "flag", "general", "refuse"] as const;
const LABELS: { value: SafetyLabel; text: string }[] = [
  { value: "benign", text: "Benign (false positive)" },
  { value: "injection", text: "Injection" },
  { value: "jailbreak", text: "Jailbreak" },
  { value: "extraction", text: "Extraction" },
];

/** What the experts' policy did with a flagged request, in words. */
export const ACTION_TEXT: Record<SafetyFlag["action"], string> = {
  allow: "answered (policy: allow)",
  flag: "answered and flagged",
  general: "sent to the generalist",
  refuse: "refused",
};

interface Filters {
  category: string;
  expert: string;
  action: string;
  label: string;
}
const NO_FILTERS: Filters = { category: "", expert: "", action: "", label: "" };

/** The list's query for the chosen filters (empty ones left out). */
export function flagQuery(filters: Filters, cursor?: string): SafetyFlagQuery {
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(filters)) if (v) query[k] = v;
  if (cursor) query.cursor = cursor;
  return query as SafetyFlagQuery;
}

function describe(err: unknown): string {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`;
  if (err.status === 0) return "The server could not be reached. Check your connection and try again.";
  if (err.status === 403) return "Labelling and exporting flags needs the admin role.";
  if (err.code === "safety_flag_not_found") return "This flag no longer exists.";
  return `The server answered with an error (${err.status}): ${err.message}`;
}

interface Props {
  api: Api;
  models: ModelCard[];
  /** The signed-in user's roles; null when unknown (the API decides). */
  roles?: readonly string[] | null;
}

export function Safety({ api, models, roles = null }: Props) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [actionError, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState<number | null>(null);
  const id = useId();
  const admin = roles === null || roles.includes("admin");

  const fetchPage = useCallback((cursor?: string) => api.safetyFlags(flagQuery(filters, cursor)), [api, filters]);
  const list = usePagedList<SafetyFlag>(fetchPage);
  const { items: flags, status } = list;
  const error = list.error ? `Could not load the safety flags. ${describe(list.error)}` : actionError;

  async function relabel(flag: SafetyFlag, label: SafetyLabel | null) {
    setBusy(flag.id);
    setNotice(null);
    try {
      const updated = await api.labelSafetyFlag(flag.id, label);
      list.update((shown) => shown.map((f) => (f.id === updated.id ? updated : f)));
      const what = label === null ? "label cleared" : label === "benign" ? "marked a false positive" : `labelled ${label}`;
      setNotice(`Flag ${flag.id} ${what}.`);
      setError(null);
    } catch (err) {
      setError(`The label was not saved. ${describe(err)}`);
    } finally {
      setBusy(null);
    }
  }

  async function exportLabels() {
    try {
      const blob = await api.exportSafetyFlags();
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = "safety-relabelled.jsonl";
      a.click();
      URL.revokeObjectURL(url);
    } catch (err) {
      setError(`Export failed. ${describe(err)}`);
    }
  }

  if (status === "missing") {
    return (
      <section className="card">
        <h2>Safety flags</h2>
        <p>This server does not offer the safety API yet (<code>/api/v1/safety/flags</code>).</p>
      </section>
    );
  }
  if (status === "forbidden") {
    return (
      <section className="card">
        <h2>Safety flags</h2>
        <p>The safety flags are for admins and auditors; your account has neither role.</p>
      </section>
    );
  }

  const choice = (name: keyof Filters, label: string, options: readonly string[], any = "any") => (
    <div className="field">
      <label htmlFor={`${id}-${name}`}>{label}</label>
      <select id={`${id}-${name}`} value={filters[name]} onChange={(e) => setFilters({ ...filters, [name]: e.target.value })}>
        <option value="">{any}</option>
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </div>
  );

  return (
    <section aria-labelledby={`${id}-h`} className="safety">
      <div className="row spread">
        <h2 id={`${id}-h`}>Safety flags</h2>
        <div className="row">
          {admin && (
            <button type="button" className="ghost small" onClick={() => void exportLabels()}>
              Export labels (JSONL)
            </button>
          )}
          <button type="button" className="ghost small" onClick={() => void list.reload()}>
            Refresh
          </button>
        </div>
      </div>
      <p className="muted small">
        Requests the input safety check flagged, newest first.
        {admin && " Label each one: a false positive, or the category it really is. Labelled flags are exported as training data."}
      </p>
      <form className="filters" aria-label="Filter the safety flags" onSubmit={(e) => e.preventDefault()}>
        {choice("category", "Category", CATEGORIES)}
        {choice("expert", "Expert", models.map((m) => m.id).filter((m) => m !== "auto"))}
        {choice("action", "Action", ACTIONS)}
        {choice("label", "Label", ["unlabelled", ...LABELS.map((l) => l.value)])}
      </form>
      <div role="status" className="safety-notice">
        {notice}
      </div>
      <ErrorLine error={error} />
      {status === "loading" && (
        <p className="muted" role="status">
          Loading the safety flags…
        </p>
      )}
      {status === "ready" && flags.length === 0 && (
        <p className="safety-empty">No flagged request matches these filters.</p>
      )}
      <ul className="flags" aria-label="Flagged requests">
        {flags.map((f) => (
          <FlagItem key={f.id} flag={f} admin={admin} busy={busy === f.id} onLabel={(label) => void relabel(f, label)} />
        ))}
      </ul>
      {list.hasMore && (
        <button type="button" className="ghost" disabled={list.loadingMore} onClick={() => void list.loadMore()}>
          Older flags
        </button>
      )}
    </section>
  );
}

function FlagItem({
  flag,
  admin,
  busy,
  onLabel,
}: {
  flag: SafetyFlag;
  admin: boolean;
  busy: boolean;
  onLabel: (label: SafetyLabel | null) => void;
}) {
  const id = useId();
  const when = new Date(flag.created_at);
  return (
    <li className="flag card" aria-labelledby={`${id}-t`} data-flag-id={flag.id}>
      <div className="flag-head">
        <h3 id={`${id}-t`} className="flag-title">
          <span className={`flag-category category-${flag.category}`}>{flag.category}</span>{" "}
          <span className="flag-score">score {flag.score.toFixed(2)}</span>
        </h3>
        <span className={`badge expert-${flag.expert}`}>{flag.expert}</span>
        <span className={`flag-action action-${flag.action}`}>{ACTION_TEXT[flag.action]}</span>
        <time className="muted small" dateTime={flag.created_at} title={when.toISOString()}>
          {when.toLocaleString()}
        </time>
      </div>
      {flag.excerpt === null || flag.excerpt === undefined ? (
        <p className="muted small flag-excerpt">The text was not kept (the audit text policy is “hash”).</p>
      ) : (
        <blockquote className="flag-excerpt">{flag.excerpt}</blockquote>
      )}
      <p className="muted small flag-meta">
        {flag.user_email ?? "unknown user"} · {flag.channel}
        {flag.rules.length > 0 && ` · rules: ${flag.rules.join(", ")}`} ·{" "}
        {flag.audit_seq !== null && flag.audit_seq !== undefined ? (
          <a
            href={`/console/audit/${flag.audit_seq}`}
            onClick={(e) => {
              e.preventDefault();
              navigate(`/console/audit/${flag.audit_seq}`);
            }}
          >
            audit trace
          </a>
        ) : (
          <span>audit event pending</span>
        )}
      </p>
      <div className="flag-label row">
        <span className="small">
          {flag.label ? (
            <>
              Labelled <strong>{flag.label === "benign" ? "benign (false positive)" : flag.label}</strong>
              {flag.labelled_by && ` by ${flag.labelled_by}`}
            </>
          ) : (
            "Not labelled"
          )}
        </span>
        {admin && (
          <div className="row flag-buttons" role="group" aria-label={`Label flag ${flag.id}`}>
            {LABELS.map((l) => (
              <button
                key={l.value}
                type="button"
                className="ghost small"
                aria-pressed={flag.label === l.value}
                disabled={busy}
                onClick={() => onLabel(flag.label === l.value ? null : l.value)}
              >
                {l.text}
              </button>
            ))}
          </div>
        )}
      </div>
    </li>
  );
}

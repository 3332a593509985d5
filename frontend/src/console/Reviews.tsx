// The human review queue (docs/review.md): answers an expert's `review:` policy held for
// a person. Reviewers see the experts they may review, admins every expert. The selected
// review lives in the path (/console/reviews/<id>) like the audit log's event.
import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import { groundingOf, type Review, type ReviewDecision } from "../api/types";
import { CitationDialog, CitationList } from "../chat/Citations";
import { GroundingNote } from "../chat/GroundingNote";
import { navigate } from "../location";
import { Markdown } from "../markdown/Markdown";
import { ErrorLine, GridTable } from "./Table";
import { usePagedList } from "./usePagedList";
import "./Reviews.css";

type Decision = ReviewDecision["decision"];

const DECISIONS: Record<Decision, { label: string; submit: string; hint: string }> = {
  approve: { label: "Approve", submit: "Approve answer", hint: "The asker gets the draft as it is." },
  edit: { label: "Edit", submit: "Send edited answer", hint: "The asker gets your text instead of the draft." },
  reject: { label: "Reject", submit: "Reject answer", hint: "The asker is told the answer was rejected, with your reason." },
};
const ORDER: Decision[] = ["approve", "edit", "reject"];

const DONE: Record<Decision, string> = {
  approve: "Approved: the asker now sees the draft.",
  edit: "Edited: the asker now sees your text.",
  reject: "Rejected: the asker is told why.",
};

/** How long a review has waited, in the largest whole unit ("just now", "5 min", "3 h", "2 d"). */
export function waited(createdAt: string, now: number): string {
  const seconds = Math.max(0, (now - new Date(createdAt).getTime()) / 1000);
  if (!Number.isFinite(seconds)) return "unknown";
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** What went wrong, in words for the person at the console. */
export function describeError(err: unknown, expert?: string): string {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`;
  if (err.code === "review_decided") {
    return "Someone else decided this review while you were reading it, so your decision was not applied. The queue has been refreshed.";
  }
  if (err.code === "review_not_assigned") {
    return `You are not a reviewer of the ${expert ? `“${expert}” ` : ""}expert, so you cannot decide this review. An admin can add you to its review group.`;
  }
  if (err.code === "reviewer_required") return "The review queue is for reviewers and admins; your account has neither role.";
  if (err.code === "review_not_found" || err.status === 404) return "This review does not exist (it may have been removed).";
  if (err.status === 0) return "The server could not be reached. Check your connection and try again.";
  if (err.status === 401) return "Your sign-in has expired. Sign in again to review answers.";
  if (err.status === 422) return `The server refused the decision: ${err.message}`;
  return `The server answered with an error (${err.status}): ${err.message}`;
}

export function Reviews({ api, detail }: { api: Api; detail: string | null }) {
  const [actionError, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // A review opened by its path that is not in the pending queue (decided, or beyond the page).
  const [other, setOther] = useState<Review | null>(null);
  const [otherError, setOtherError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const id = useId();

  const fetchPage = useCallback(
    async (cursor?: string) => {
      const page = await api.reviews("pending", cursor);
      setNow(Date.now());
      return page;
    },
    [api],
  );
  const list = usePagedList<Review>(fetchPage);
  const { items: queue, status, reload: load } = list;
  const error = list.error ? `Could not load the review queue. ${describeError(list.error)}` : actionError;

  // Ages move on while the page is open.
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 60_000);
    return () => window.clearInterval(timer);
  }, []);

  const selected = queue.find((r) => r.id === detail) ?? (other?.id === detail ? other : null);

  useEffect(() => {
    setOtherError(null);
    if (!detail || status !== "ready" || queue.some((r) => r.id === detail)) return;
    let cancelled = false;
    api.review(detail).then(
      (r) => {
        if (cancelled) return;
        if ("draft" in r) setOther(r);
        else setOtherError(`Review ${detail} is ${r.status}; you may see only its outcome.`);
      },
      (err) => !cancelled && setOtherError(describeError(err)),
    );
    return () => {
      cancelled = true;
    };
  }, [api, detail, status, queue]);

  function open(reviewId: string) {
    setNotice(null);
    setError(null);
    navigate(`/console/reviews/${encodeURIComponent(reviewId)}`);
  }

  async function decided(review: Review, decision: Decision) {
    setNotice(`${DONE[decision]} (${review.expert}: “${clip(review.question, 60)}”)`);
    list.update((q) => q.filter((r) => r.id !== review.id));
    navigate("/console/reviews");
    await load();
  }

  async function conflicted(message: string) {
    setNotice(null);
    navigate("/console/reviews");
    await load();
    setError(message);
  }

  if (status === "missing") {
    return (
      <section className="card">
        <h2>Reviews</h2>
        <p>This server does not offer the review API yet (<code>/api/v1/reviews</code>).</p>
      </section>
    );
  }
  if (status === "forbidden") {
    return (
      <section className="card">
        <h2>Reviews</h2>
        <p>The review queue is for reviewers and admins; your account has neither role.</p>
      </section>
    );
  }

  return (
    <section aria-labelledby={`${id}-h`} className="reviews">
      <div className="row spread">
        <h2 id={`${id}-h`}>Reviews</h2>
        <button type="button" className="ghost small" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <p className="muted small">
        Answers held for a person before the asker sees them (or delivered with a notice), oldest first.
      </p>
      <div role="status" className="review-notice">
        {notice}
      </div>
      <ErrorLine error={error} />
      <div className={selected ? "review-body open" : "review-body"}>
        <div className="table-wrap">
          <GridTable label="Pending reviews" columns={["Expert", "Waiting", "Question"]}>
            {queue.map((r) => (
              <tr key={r.id} className={r.id === detail ? "selected" : undefined}>
                <td>
                  <span className={`badge expert-${r.expert}`}>{r.expert}</span>
                </td>
                <td>
                  <time dateTime={r.created_at} title={new Date(r.created_at).toLocaleString()}>
                    {waited(r.created_at, now)}
                  </time>
                </td>
                <td className="review-question">
                  <a
                    href={`/console/reviews/${encodeURIComponent(r.id)}`}
                    aria-current={r.id === detail ? "true" : undefined}
                    onClick={(e) => {
                      e.preventDefault();
                      open(r.id);
                    }}
                  >
                    {clip(r.question, 140)}
                  </a>
                </td>
              </tr>
            ))}
          </GridTable>
          {status === "loading" && (
            <p className="muted" role="status">
              Loading the review queue…
            </p>
          )}
          {status === "ready" && queue.length === 0 && (
            <div className="review-empty">
              <p>No answers are waiting for review.</p>
              <p className="muted small">
                Answers of experts with a <code>review:</code> policy in experts.yaml appear here; only the experts you
                may review are listed.
              </p>
            </div>
          )}
          {list.hasMore && (
            <button type="button" className="ghost" disabled={list.loadingMore} onClick={() => void list.loadMore()}>
              More reviews
            </button>
          )}
        </div>
        {selected && (
          <ReviewDetail
            key={selected.id}
            api={api}
            review={selected}
            onDecided={(decision) => void decided(selected, decision)}
            onConflict={(message) => void conflicted(message)}
            onClose={() => navigate("/console/reviews")}
          />
        )}
        {!selected && otherError && (
          <p className="error" role="alert">
            {otherError}
          </p>
        )}
      </div>
    </section>
  );
}

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

interface DetailProps {
  api: Api;
  review: Review;
  onDecided: (decision: Decision) => void;
  onConflict: (message: string) => void;
  onClose: () => void;
}

function ReviewDetail({ api, review, onDecided, onConflict, onClose }: DetailProps) {
  const [decision, setDecision] = useState<Decision>("approve");
  const [text, setText] = useState(review.draft);
  const [reason, setReason] = useState("");
  const [problems, setProblems] = useState<{ reason?: string; text?: string }>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [cited, setCited] = useState<number | null>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const reasonRef = useRef<HTMLTextAreaElement>(null);
  const textRef = useRef<HTMLTextAreaElement>(null);
  const id = useId();
  const citations = review.citations ?? [];
  const grounding = groundingOf(review.grounding);
  const opened = citations.find((c) => c.number === cited) ?? null;
  const pending = review.status === "pending";
  const chosen = DECISIONS[decision];

  // Opening a review moves focus to it: on a phone it sits below the queue.
  useEffect(() => {
    headingRef.current?.focus();
  }, []);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const found: { reason?: string; text?: string } = {};
    if (decision === "edit" && !text.trim()) found.text = "Write the answer the asker should get.";
    else if (decision === "edit" && text.trim() === review.draft.trim()) {
      found.text = "The text is the same as the draft: change it, or approve the draft instead.";
    }
    if (!reason.trim()) found.reason = "Give a reason: it is recorded in the audit log.";
    setProblems(found);
    if (found.text) return textRef.current?.focus();
    if (found.reason) return reasonRef.current?.focus();
    const body: ReviewDecision = { decision, reason: reason.trim() };
    if (decision === "edit") body.text = text;
    setBusy(true);
    setError(null);
    try {
      await api.decideReview(review.id, body);
      onDecided(decision);
    } catch (err) {
      setBusy(false);
      if (err instanceof ApiError && err.code === "review_decided") onConflict(describeError(err));
      else setError(describeError(err, review.expert));
    }
  }

  return (
    <article className="card review-detail" aria-labelledby={`${id}-h`}>
      <div className="row spread">
        <h3 id={`${id}-h`} ref={headingRef} tabIndex={-1}>
          Review of a <span className={`badge expert-${review.expert}`}>{review.expert}</span> answer
        </h3>
        <button type="button" className="ghost small" onClick={onClose}>
          Close
        </button>
      </div>
      <p className="muted small">
        Asked <time dateTime={review.created_at}>{new Date(review.created_at).toLocaleString()}</time> on{" "}
        {review.channel} · sent to review: {TRIGGERS[review.trigger] ?? review.trigger} ·{" "}
        {review.delivery === "hold" ? "held from the asker until you decide" : "already delivered with a notice"}
      </p>
      <h4>Question</h4>
      <blockquote className="review-q">{review.question}</blockquote>
      <h4>Draft answer</h4>
      <div className="review-draft" data-testid="review-draft">
        <Markdown text={review.draft} citationCount={citations.length} onCite={setCited} marks={grounding?.unsupported} />
        <GroundingNote grounding={grounding} />
        <CitationList citations={citations} onOpen={setCited} />
      </div>
      {!pending && (
        <p role="status">
          Already {review.status}
          {review.reviewer_email ? ` by ${review.reviewer_email}` : ""}
          {review.reason ? `: “${review.reason}”` : "."}
        </p>
      )}
      {pending && (
        <form className="review-form stack" onSubmit={(e) => void submit(e)} noValidate aria-label="Decide this review">
          <fieldset className="field">
            <legend>Decision</legend>
            <div className="row">
              {ORDER.map((d) => (
                <label key={d} className="check review-choice">
                  <input
                    type="radio"
                    name={`${id}-decision`}
                    value={d}
                    checked={decision === d}
                    onChange={() => setDecision(d)}
                  />
                  {DECISIONS[d].label}
                </label>
              ))}
            </div>
            <p className="muted small">{chosen.hint}</p>
          </fieldset>
          {decision === "edit" && (
            <div className="field">
              <label htmlFor={`${id}-text`}>Edited answer</label>
              <textarea
                id={`${id}-text`}
                ref={textRef}
                rows={10}
                value={text}
                onChange={(e) => setText(e.target.value)}
                aria-invalid={problems.text ? true : undefined}
                aria-describedby={problems.text ? `${id}-text-err` : undefined}
              />
              {problems.text && (
                <p className="error small" id={`${id}-text-err`}>
                  {problems.text}
                </p>
              )}
            </div>
          )}
          <div className="field">
            <label htmlFor={`${id}-reason`}>Reason (required)</label>
            <textarea
              id={`${id}-reason`}
              ref={reasonRef}
              rows={2}
              maxLength={2000}
              required
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              aria-invalid={problems.reason ? true : undefined}
              aria-describedby={problems.reason ? `${id}-reason-err` : undefined}
            />
            {problems.reason && (
              <p className="error small" id={`${id}-reason-err`}>
                {problems.reason}
              </p>
            )}
          </div>
          <div className="row">
            <button type="submit" className={decision === "reject" ? "danger" : undefined} disabled={busy}>
              {busy ? "Sending…" : chosen.submit}
            </button>
          </div>
          <ErrorLine error={error} />
        </form>
      )}
      {opened && <CitationDialog citation={opened} onClose={() => setCited(null)} />}
    </article>
  );
}

const TRIGGERS: Record<string, string> = {
  always: "every answer of this expert is reviewed",
  on_fail: "the grounding check failed",
  sample: "picked at random",
};

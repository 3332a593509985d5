import { useEffect, useRef, type ReactNode } from "react";

import type { Citation } from "../api/types";

function isWebUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

export function SourceLink({ source }: { source: string }) {
  return isWebUrl(source) ? (
    <a href={source} target="_blank" rel="noopener noreferrer nofollow">
      {source}
    </a>
  ) : (
    <code>{source}</code>
  );
}

/**
 * The numbered sources under an answer; each opens its passage. The number is its own
 * grid column, so a title that wraps (on a phone) stays beside its number.
 */
export function CitationList({
  citations,
  onOpen,
}: {
  citations: Citation[];
  onOpen: (n: number) => void;
}) {
  if (!citations.length) return null;
  return (
    <details className="citations" open>
      <summary>Sources ({citations.length})</summary>
      <ol className="source-list">
        {citations.map((c) => (
          <li key={c.number} value={c.number}>
            <span className="source-number" aria-hidden="true">
              {c.number}.
            </span>
            <button type="button" className="link" onClick={() => onOpen(c.number)}>
              {c.title || c.source}
            </button>
          </li>
        ))}
      </ol>
    </details>
  );
}

/**
 * A modal: focus moves to its Close button and goes back where it was when it closes;
 * Escape, the button or a click outside closes it.
 */
export function Modal({
  titleId,
  onClose,
  wide = false,
  testId,
  children,
}: {
  titleId: string;
  onClose: () => void;
  wide?: boolean;
  testId?: string;
  children: ReactNode;
}) {
  const closeRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    closeRef.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      opener?.focus?.();
    };
  }, [onClose]);
  return (
    <div className="backdrop" onClick={onClose}>
      <div
        className={`dialog${wide ? " dialog-wide" : ""}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        data-testid={testId}
        onClick={(e) => e.stopPropagation()}
      >
        {children}
        <div className="dialog-actions">
          <button type="button" ref={closeRef} onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}

/** A sentence a citation is given for, with what the grounding check found in it. */
export interface CitedFor {
  text: string;
  /** The check's findings inside this sentence (its detail, one line each). */
  findings: string[];
}

/**
 * One citation: the sentences of the answer it is cited for (and what the grounding
 * check found in each), its passage and source, and
 * (when the server names its document) a way to the whole document.
 */
export function CitationDialog({
  citation,
  sentences = [],
  onClose,
  onOpenDocument,
}: {
  citation: Citation;
  /** The answer's sentences that carry this citation's marker. */
  sentences?: CitedFor[];
  onClose: () => void;
  onOpenDocument?: () => void;
}) {
  const titleId = `cite-title-${citation.number}`;
  return (
    <Modal titleId={titleId} onClose={onClose}>
      <h2 id={titleId}>
        [{citation.number}] {citation.title || "Source"}
      </h2>
      <p className="muted">
        Source: <SourceLink source={citation.source} />
        {citation.location && <> · {citation.location}</>}
        {Number.isFinite(citation.score) && <> · relevance {citation.score.toFixed(2)}</>}
      </p>
      {sentences.length > 0 && (
        <div className="cited-for" data-testid="cited-for">
          <h3 className="small">Cited for</h3>
          <ul>
            {sentences.map((s, i) => (
              <li key={i}>
                {s.text}
                {s.findings.map((f, j) => (
                  <span key={j} className="cited-finding small" data-testid="cited-finding">
                    <span aria-hidden="true">⚠ </span>
                    {f}
                  </span>
                ))}
              </li>
            ))}
          </ul>
        </div>
      )}
      <h3 className="small">The passage</h3>
      <blockquote className="passage">{citation.snippet}</blockquote>
      {onOpenDocument && (
        <p>
          <button type="button" className="ghost" onClick={onOpenDocument}>
            Read the whole document
          </button>
        </p>
      )}
    </Modal>
  );
}

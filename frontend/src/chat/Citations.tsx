import { useEffect, useRef } from "react";

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

/** The numbered sources under an answer; each opens its passage. */
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
      <ol>
        {citations.map((c) => (
          <li key={c.number} value={c.number}>
            <button type="button" className="link" onClick={() => onOpen(c.number)}>
              {c.title || c.source}
            </button>
          </li>
        ))}
      </ol>
    </details>
  );
}

/** A modal with one citation's passage and source. Escape or the button closes it. */
export function CitationDialog({ citation, onClose }: { citation: Citation; onClose: () => void }) {
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
  const titleId = `cite-title-${citation.number}`;
  return (
    <div className="backdrop" onClick={onClose}>
      <div
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        onClick={(e) => e.stopPropagation()}
      >
        <h2 id={titleId}>
          [{citation.number}] {citation.title || "Source"}
        </h2>
        <p className="muted">
          Source: <SourceLink source={citation.source} />
          {citation.location && <> · {citation.location}</>}
          {Number.isFinite(citation.score) && <> · relevance {citation.score.toFixed(2)}</>}
        </p>
        <blockquote className="passage">{citation.snippet}</blockquote>
        <div className="dialog-actions">
          <button type="button" ref={closeRef} onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}

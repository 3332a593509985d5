import { useState, type ReactNode } from "react";

import type { UnsupportedReason, UnsupportedSpan } from "../api/types";

export const REASON_TEXT: Record<UnsupportedReason, string> = {
  number_mismatch: "A number or name does not match the cited documents",
  unsupported: "Not supported by the cited documents",
  contradiction: "Contradicts the cited documents",
};

export function explanation(span: UnsupportedSpan): string {
  const reason = REASON_TEXT[span.reason];
  return span.detail ? `${reason}: ${span.detail}` : `${reason}.`;
}

interface Props {
  span: UnsupportedSpan;
  /** Unique in the page: the explanation's id, which every piece of the span refers to. */
  id: string;
  /** The last piece of the span carries the button and the explanation. */
  last: boolean;
  open: boolean;
  onToggle: () => void;
  onClose: () => void;
  children?: ReactNode;
}

/**
 * One piece of a span of the answer its documents do not support. The explanation shows
 * on hover (title, and the popover on the button), on keyboard focus of the button and on
 * a tap or click of the text or the button (for touch), and is the pieces' description.
 */
export function UnsupportedMark({ span, id, last, open, onToggle, onClose, children }: Props) {
  const text = explanation(span);
  // Escape hides the explanation even while hover or focus would show it (WCAG 1.4.13),
  // until the pointer or the focus leaves.
  const [dismissed, setDismissed] = useState(false);
  return (
    <>
      <mark
        className={`unsupported unsupported-${span.reason}`}
        data-testid="unsupported"
        data-reason={span.reason}
        title={text}
        aria-describedby={id}
        onClick={onToggle}
      >
        {children}
      </mark>
      {last && (
        <span
          className={dismissed ? "unsupported-flag dismissed" : "unsupported-flag"}
          onMouseLeave={() => setDismissed(false)}
          onBlur={() => setDismissed(false)}
        >
          <button
            type="button"
            className="unsupported-button"
            aria-label={REASON_TEXT[span.reason]}
            aria-describedby={id}
            aria-expanded={open}
            aria-controls={id}
            onClick={() => {
              setDismissed(open);
              onToggle();
            }}
            onKeyDown={(e) => {
              if (e.key !== "Escape") return;
              e.stopPropagation();
              setDismissed(true);
              onClose();
            }}
          >
            <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">
              <path d="M8 1.5 15 14H1z" fill="none" stroke="currentColor" strokeWidth="1.6" strokeLinejoin="round" />
              <path d="M8 6v3.6M8 11.4v.1" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" />
            </svg>
          </button>
          <span role="tooltip" id={id} className={open ? "unsupported-pop open" : "unsupported-pop"}>
            {text}
          </span>
        </span>
      )}
    </>
  );
}

// A modal dialog for the console: rendered over the page (a portal on <body>), the rest of
// the page inert while it is open, Tab and Shift+Tab kept inside it, Escape or a click on
// the backdrop cancels, and focus goes back where it was when it closes.
import { useEffect, useRef, type KeyboardEvent, type ReactNode } from "react";
import { createPortal } from "react-dom";

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root: HTMLElement): HTMLElement[] {
  return Array.from(root.querySelectorAll<HTMLElement>(FOCUSABLE));
}

export function Modal({
  labelledBy,
  describedBy,
  onCancel,
  className = "",
  children,
  testId,
}: {
  /** The id of the element that names the dialog (its heading). */
  labelledBy: string;
  describedBy?: string;
  /** Escape, the backdrop, or the dialog's own cancel button. */
  onCancel: () => void;
  className?: string;
  children: ReactNode;
  testId?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const cancel = useRef(onCancel);
  cancel.current = onCancel;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    // Everything beside the dialog's own portal is inert: no clicks, no focus, hidden from
    // assistive technology (aria-modal alone is not honoured everywhere).
    const portal = dialog.closest("[data-modal-portal]");
    const others = Array.from(document.body.children).filter((el): el is HTMLElement => el !== portal && el instanceof HTMLElement && !el.inert);
    for (const el of others) el.inert = true;
    const first = dialog.querySelector<HTMLElement>("[data-autofocus]") ?? focusables(dialog)[0] ?? dialog;
    first.focus();
    return () => {
      for (const el of others) el.inert = false;
      if (before?.isConnected) before.focus();
    };
  }, []);

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    if (e.key === "Escape") {
      e.stopPropagation();
      cancel.current();
      return;
    }
    if (e.key !== "Tab" || !ref.current) return;
    const items = focusables(ref.current);
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const first = items[0]!;
    const last = items[items.length - 1]!;
    const active = document.activeElement;
    if (e.shiftKey && (active === first || active === ref.current)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  }

  return createPortal(
    <div data-modal-portal="">
      <div
        className="backdrop"
        onMouseDown={(e) => {
          if (e.target === e.currentTarget) cancel.current();
        }}
      >
        <div
          ref={ref}
          role="dialog"
          aria-modal="true"
          aria-labelledby={labelledBy}
          aria-describedby={describedBy}
          className={`dialog ${className}`.trim()}
          tabIndex={-1}
          onKeyDown={onKeyDown}
          data-testid={testId}
        >
          {children}
        </div>
      </div>
    </div>,
    document.body,
  );
}

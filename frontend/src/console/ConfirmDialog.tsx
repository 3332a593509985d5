import { useId, type ReactNode } from "react";

import { Modal } from "./Modal";

/** Asks before a change that reaches everyone (company-wide routing). Cancel has the focus
 * when it opens, so Enter alone never confirms; Escape cancels. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  title: string;
  /** What will change, in words: shown as the dialog's description. */
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const id = useId();
  return (
    <Modal labelledBy={`${id}-title`} describedBy={`${id}-body`} onCancel={onCancel} testId="confirm-dialog">
      <h2 id={`${id}-title`}>{title}</h2>
      <div id={`${id}-body`} className="confirm-body">
        {children}
      </div>
      <div className="dialog-actions row">
        <button type="button" className="ghost" onClick={onCancel} data-autofocus="">
          Cancel
        </button>
        <button type="button" onClick={onConfirm}>
          {confirmLabel}
        </button>
      </div>
    </Modal>
  );
}

import { useEffect, useId, useRef, useState, type FormEvent } from "react";

import type { UserTurn } from "./turns";

/**
 * The user's question; "Edit" turns it into a box whose text is sent in its place (the
 * conversation goes on from the edited question: what followed it is replaced).
 */
export function Question({ turn, onEdit }: { turn: UserTurn; onEdit?: (text: string) => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(turn.text);
  const boxRef = useRef<HTMLTextAreaElement>(null);
  const id = useId();
  useEffect(() => {
    if (editing) boxRef.current?.focus();
  }, [editing]);

  function submit(e: FormEvent) {
    e.preventDefault();
    const edited = text.trim();
    if (!edited || !onEdit) return;
    setEditing(false);
    onEdit(edited);
  }

  if (editing && onEdit) {
    return (
      <form className="turn question editing" onSubmit={submit} aria-label="Edit your question">
        <label htmlFor={`${id}-edit`} className="sr-only">
          Edited question
        </label>
        <textarea
          id={`${id}-edit`}
          ref={boxRef}
          rows={3}
          value={text}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Escape") setEditing(false);
            else if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) submit(e);
          }}
        />
        <p className="muted small">The answers after this question are replaced by the new one.</p>
        <div className="row">
          <button type="submit" disabled={!text.trim() || text.trim() === turn.text}>
            Send
          </button>
          <button
            type="button"
            className="ghost"
            onClick={() => {
              setText(turn.text);
              setEditing(false);
            }}
          >
            Cancel
          </button>
        </div>
      </form>
    );
  }
  return (
    <article className="turn question" data-testid="question">
      <p>{turn.text}</p>
      {onEdit && (
        <button
          type="button"
          className="ghost small edit-question"
          aria-label={`Edit question: ${turn.text.slice(0, 60)}`}
          onClick={() => {
            setText(turn.text);
            setEditing(true);
          }}
        >
          <span aria-hidden="true">✎</span>Edit
        </button>
      )}
    </article>
  );
}

import { useId, type FormEvent, type KeyboardEvent, type Ref } from "react";

import type { ModelCard } from "../api/types";

interface Props {
  models: ModelCard[];
  model: string;
  onModel: (model: string) => void;
  /** The draft, held by the page so that an example question can fill it. */
  text: string;
  onText: (text: string) => void;
  busy: boolean;
  onSend: (text: string) => void;
  onStop: () => void;
  inputRef?: Ref<HTMLTextAreaElement>;
  /** Why nothing can be sent now (e.g. two answers wait for the user to keep one). */
  blocked?: string | null;
}

/** The question box: Enter sends, Shift+Enter breaks the line, Escape stops an answer. */
export function Composer({ models, model, onModel, text, onText, busy, onSend, onStop, inputRef, blocked = null }: Props) {
  const id = useId();

  function submit(e?: FormEvent) {
    e?.preventDefault();
    if (busy || blocked || !text.trim()) return;
    onSend(text.trim());
    onText("");
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) submit(e);
    else if (e.key === "Escape" && busy) onStop();
  }

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor={`${id}-q`} className="sr-only">
        Your question
      </label>
      <textarea
        id={`${id}-q`}
        ref={inputRef}
        rows={2}
        placeholder="Ask the code, legal or support expert… (Enter to send, Shift+Enter for a new line)"
        value={text}
        onChange={(e) => onText(e.target.value)}
        onKeyDown={onKeyDown}
        autoFocus
      />
      {blocked && (
        <p className="muted small composer-hint" id={`${id}-blocked`}>
          {blocked}
        </p>
      )}
      <div className="composer-bar">
        <label htmlFor={`${id}-m`}>Expert</label>
        <select id={`${id}-m`} value={model} onChange={(e) => onModel(e.target.value)}>
          {(models.length ? models : [{ id: "auto", description: "" } as ModelCard]).map((m) => (
            <option key={m.id} value={m.id} title={m.description}>
              {m.id === "auto" ? "auto (route for me)" : m.id}
            </option>
          ))}
        </select>
        {busy ? (
          <button type="button" className="danger" onClick={onStop}>
            Stop
          </button>
        ) : (
          <button type="submit" disabled={!text.trim() || !!blocked} aria-describedby={blocked ? `${id}-blocked` : undefined}>
            Send
          </button>
        )}
      </div>
    </form>
  );
}

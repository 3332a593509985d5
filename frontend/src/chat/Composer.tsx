import { useId, useState, type FormEvent, type KeyboardEvent } from "react";

import type { ModelCard } from "../api/types";

interface Props {
  models: ModelCard[];
  model: string;
  onModel: (model: string) => void;
  busy: boolean;
  onSend: (text: string) => void;
  onStop: () => void;
}

/** The question box: Enter sends, Shift+Enter breaks the line, Escape stops an answer. */
export function Composer({ models, model, onModel, busy, onSend, onStop }: Props) {
  const [text, setText] = useState("");
  const id = useId();

  function submit(e?: FormEvent) {
    e?.preventDefault();
    if (busy || !text.trim()) return;
    onSend(text.trim());
    setText("");
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
        rows={2}
        placeholder="Ask the code, legal or support expert… (Enter to send, Shift+Enter for a new line)"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        autoFocus
      />
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
          <button type="submit" disabled={!text.trim()}>
            Send
          </button>
        )}
      </div>
    </form>
  );
}

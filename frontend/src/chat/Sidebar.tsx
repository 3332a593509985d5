import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";

import type { ConversationSummary } from "../api/types";

interface Props {
  conversations: ConversationSummary[];
  activeId: string | null;
  hasMore: boolean;
  error: string | null;
  open: boolean;
  /** The search as typed (the page searches the server, owner-only, titles and messages). */
  search: string;
  onSearch: (text: string) => void;
  onNew: () => void;
  onOpen: (id: string) => void;
  onDelete: (c: ConversationSummary) => void;
  /** Resolves when saved; rejects with the reason it was not. */
  onRename: (c: ConversationSummary, title: string) => Promise<void>;
  onMore: () => void;
  children?: ReactNode; // shown below the list (the quota meter)
}

function RenameForm({
  conversation,
  onSave,
  onDone,
}: {
  conversation: ConversationSummary;
  onSave: (title: string) => Promise<void>;
  onDone: () => void;
}) {
  const [title, setTitle] = useState(conversation.title);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  const id = useId();
  useEffect(() => {
    inputRef.current?.focus();
    inputRef.current?.select();
  }, []);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!title.trim()) {
      setError("A title cannot be empty.");
      return;
    }
    setSaving(true);
    try {
      await onSave(title.trim());
      onDone();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setSaving(false);
    }
  }
  return (
    <form className="rename" onSubmit={submit} aria-label="Rename conversation">
      <label htmlFor={`${id}-title`} className="sr-only">
        New title
      </label>
      <input
        id={`${id}-title`}
        ref={inputRef}
        value={title}
        maxLength={200}
        onChange={(e) => setTitle(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") onDone();
        }}
      />
      <div className="row">
        <button type="submit" className="small" disabled={saving}>
          Save
        </button>
        <button type="button" className="ghost small" onClick={onDone}>
          Cancel
        </button>
      </div>
      {error && (
        <p className="error small" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function Sidebar(props: Props) {
  const { conversations, activeId, hasMore, error, open, search } = props;
  const [renaming, setRenaming] = useState<string | null>(null);
  const id = useId();
  const searching = search.trim() !== "";
  return (
    <nav className={`sidebar${open ? " open" : ""}`} aria-label="Conversations">
      <button type="button" className="new-chat" onClick={props.onNew}>
        + New conversation
      </button>
      <div className="conv-search" role="search">
        <label htmlFor={`${id}-search`} className="sr-only">
          Search conversations
        </label>
        <input
          id={`${id}-search`}
          type="search"
          placeholder="Search conversations"
          value={search}
          onChange={(e) => props.onSearch(e.target.value)}
        />
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {!error && conversations.length === 0 && (
        <p className="muted small" role={searching ? "status" : undefined}>
          {searching ? `No conversation holds “${search.trim()}”.` : "No conversations yet."}
        </p>
      )}
      <ul className="conv-list">
        {conversations.map((c) => (
          <li key={c.id} className={c.id === activeId ? "active" : undefined}>
            {renaming === c.id ? (
              <RenameForm
                conversation={c}
                onSave={(title) => props.onRename(c, title)}
                onDone={() => setRenaming(null)}
              />
            ) : (
              <>
                <a
                  href={`/c/${encodeURIComponent(c.id)}`}
                  aria-current={c.id === activeId ? "page" : undefined}
                  onClick={(e) => {
                    e.preventDefault();
                    props.onOpen(c.id);
                  }}
                >
                  <span className="conv-title">{c.title || "Untitled"}</span>
                  {c.match && (
                    <span className="conv-match small" data-testid="search-match">
                      {c.match}
                    </span>
                  )}
                  <time className="muted small" dateTime={c.updated_at}>
                    {new Date(c.updated_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}
                  </time>
                </a>
                <button
                  type="button"
                  className="ghost small icon"
                  aria-label={`Rename conversation: ${c.title || "Untitled"}`}
                  title="Rename"
                  onClick={() => setRenaming(c.id)}
                >
                  <span aria-hidden="true">✎</span>
                </button>
                <button
                  type="button"
                  className="ghost small icon"
                  aria-label={`Delete conversation: ${c.title || "Untitled"}`}
                  title="Delete"
                  onClick={() => props.onDelete(c)}
                >
                  ×
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {hasMore && (
        <button type="button" className="ghost" onClick={props.onMore}>
          Show older
        </button>
      )}
      {props.children}
    </nav>
  );
}

import type { ReactNode } from "react";

import type { ConversationSummary } from "../api/types";

interface Props {
  conversations: ConversationSummary[];
  activeId: string | null;
  hasMore: boolean;
  error: string | null;
  open: boolean;
  onNew: () => void;
  onOpen: (id: string) => void;
  onDelete: (c: ConversationSummary) => void;
  onMore: () => void;
  children?: ReactNode; // shown below the list (the quota meter)
}

export function Sidebar(props: Props) {
  const { conversations, activeId, hasMore, error, open } = props;
  return (
    <nav className={`sidebar${open ? " open" : ""}`} aria-label="Conversations">
      <button type="button" className="new-chat" onClick={props.onNew}>
        + New conversation
      </button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {!error && conversations.length === 0 && <p className="muted small">No conversations yet.</p>}
      <ul className="conv-list">
        {conversations.map((c) => (
          <li key={c.id} className={c.id === activeId ? "active" : undefined}>
            <a
              href={`/c/${encodeURIComponent(c.id)}`}
              aria-current={c.id === activeId ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                props.onOpen(c.id);
              }}
            >
              <span className="conv-title">{c.title || "Untitled"}</span>
              <time className="muted small" dateTime={c.updated_at}>
                {new Date(c.updated_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}
              </time>
            </a>
            <button
              type="button"
              className="ghost small icon"
              aria-label={`Delete conversation: ${c.title || "Untitled"}`}
              onClick={() => props.onDelete(c)}
            >
              ×
            </button>
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

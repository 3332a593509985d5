import { useCallback, useEffect, useReducer, useRef, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { RateLimit } from "../api/stream";
import type { ConversationSummary, LimitUsage, ModelCard } from "../api/types";
import { navigate } from "../location";
import { Answer } from "./Answer";
import { Composer } from "./Composer";
import { examplesFor } from "./examples";
import { QuotaMeter } from "./QuotaMeter";
import { Sidebar } from "./Sidebar";
import { chatReducer, emptyChat, history } from "./turns";

interface Props {
  api: Api;
  models: ModelCard[];
  conversationId: string | null;
  sidebarOpen: boolean;
  onCloseSidebar: () => void;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function ChatPage({ api, models, conversationId, sidebarOpen, onCloseSidebar }: Props) {
  const [chat, dispatch] = useReducer(chatReducer, emptyChat);
  const [model, setModel] = useState("auto");
  const [draft, setDraft] = useState("");
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const [busy, setBusy] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [list, setList] = useState<ConversationSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [usage, setUsage] = useState<LimitUsage[] | null>(null);
  const [live, setLive] = useState<RateLimit[]>([]);
  const abortRef = useRef<AbortController | null>(null);
  const bottomRef = useRef<HTMLDivElement>(null);
  const experts = models.map((m) => m.id).filter((id) => id !== "auto");

  const refreshList = useCallback(async () => {
    try {
      const page = await api.conversations();
      setList(page.data);
      setCursor(page.next_cursor);
      setListError(null);
    } catch (err) {
      setListError(`Could not load conversations: ${message(err)}`);
    }
  }, [api]);

  // Quota left; a server without /me/usage just shows no meter.
  const refreshUsage = useCallback(async () => {
    try {
      setUsage(await api.usage());
    } catch {
      setUsage(null);
    }
  }, [api]);

  useEffect(() => {
    void refreshList();
    void refreshUsage();
  }, [refreshList, refreshUsage]);

  // Follow the URL: a new chat, or load a stored conversation (unless we just made it).
  useEffect(() => {
    if (conversationId === chat.conversationId) return;
    abortRef.current?.abort();
    setLoadError(null);
    dispatch({ type: "reset", conversationId });
    // An expert picked by hand was for that conversation; the next one starts routed.
    setModel("auto");
    if (conversationId === null) return;
    let cancelled = false;
    api.conversation(conversationId).then(
      (detail) => !cancelled && dispatch({ type: "loaded", detail }),
      (err) =>
        !cancelled &&
        setLoadError(
          err instanceof ApiError && err.status === 404
            ? "This conversation does not exist (or was deleted)."
            : `Could not load the conversation: ${message(err)}`,
        ),
    );
    return () => {
      cancelled = true;
    };
    // chat.conversationId is read, not followed: only a URL change starts a load.
  }, [api, conversationId]);

  useEffect(() => {
    bottomRef.current?.scrollIntoView?.({ block: "end" });
  }, [chat.turns]);

  async function send(text: string) {
    const key = crypto.randomUUID();
    const controller = new AbortController();
    abortRef.current = controller;
    const messages = history(chat.turns, text);
    const startedIn = chat.conversationId;
    dispatch({ type: "asked", text, key });
    setBusy(true);
    let created: string | null = null;
    try {
      for await (const event of api.chat(
        { model, messages, conversation_id: startedIn, stream: true },
        controller.signal,
      )) {
        if (event.type === "limits") setLive(event.limits);
        dispatch({ type: "event", key, event });
        if (event.type === "done" && event.route?.conversation_id && !startedIn) {
          created = event.route.conversation_id;
        }
      }
    } finally {
      if (controller.signal.aborted) dispatch({ type: "stopped", key });
      setBusy(false);
      abortRef.current = null;
    }
    if (created) navigate(`/c/${encodeURIComponent(created)}`);
    void refreshList();
    void refreshUsage();
  }

  async function remove(c: ConversationSummary) {
    if (!window.confirm(`Delete "${c.title || "Untitled"}"? This cannot be undone.`)) return;
    try {
      await api.deleteConversation(c.id);
      if (c.id === chat.conversationId) navigate("/");
      await refreshList();
    } catch (err) {
      setListError(`Could not delete: ${message(err)}`);
    }
  }

  async function more() {
    if (!cursor) return;
    try {
      const page = await api.conversations(cursor);
      setList((prev) => [...prev, ...page.data]);
      setCursor(page.next_cursor);
    } catch (err) {
      setListError(message(err));
    }
  }

  return (
    <div className="chat-layout">
      <Sidebar
        conversations={list}
        activeId={chat.conversationId}
        hasMore={cursor !== null}
        error={listError}
        open={sidebarOpen}
        onNew={() => {
          onCloseSidebar();
          navigate("/");
        }}
        onOpen={(id) => {
          onCloseSidebar();
          navigate(`/c/${encodeURIComponent(id)}`);
        }}
        onDelete={remove}
        onMore={more}
      >
        <QuotaMeter usage={usage} live={live} />
      </Sidebar>
      <main className="chat-main" id="main">
        <h1 className="sr-only">Chat</h1>
        <div className="transcript" role="log" aria-live="polite" aria-label="Conversation">
          {loadError && (
            <p className="error" role="alert">
              {loadError}
            </p>
          )}
          {!loadError && chat.turns.length === 0 && (
            <div className="empty">
              <h2>Ask the experts</h2>
              <p className="muted">
                Each question goes to the expert that fits it best, or pick one below.
              </p>
              <ul className="expert-cards">
                {models
                  .filter((m) => m.id !== "auto")
                  .map((m) => (
                    <li key={m.id}>
                      <button
                        type="button"
                        className={`badge expert-${m.id}`}
                        aria-label={`Ask the ${m.id} expert`}
                        aria-pressed={model === m.id}
                        title={model === m.id ? "back to auto (route for me)" : `send the next question to ${m.id}`}
                        onClick={() => setModel(model === m.id ? "auto" : m.id)}
                      >
                        {model === m.id && <span aria-hidden="true">✓</span>}
                        {m.id}
                      </button>
                      <div>
                        <span className="small">{m.description}</span>
                        <span className="examples">
                          {examplesFor(m.id).map((q) => (
                            <button
                              key={q}
                              type="button"
                              className="example"
                              onClick={() => {
                                setDraft(q);
                                inputRef.current?.focus();
                              }}
                            >
                              {q}
                            </button>
                          ))}
                        </span>
                      </div>
                    </li>
                  ))}
              </ul>
            </div>
          )}
          {chat.turns.map((turn) =>
            turn.kind === "user" ? (
              <article key={turn.key} className="turn question" data-testid="question">
                <p>{turn.text}</p>
              </article>
            ) : (
              <Answer key={turn.key} api={api} turn={turn} experts={experts} />
            ),
          )}
          <div ref={bottomRef} />
        </div>
        <Composer
          models={models}
          model={model}
          onModel={setModel}
          text={draft}
          onText={setDraft}
          inputRef={inputRef}
          busy={busy}
          onSend={(t) => void send(t)}
          onStop={() => abortRef.current?.abort()}
        />
      </main>
    </div>
  );
}

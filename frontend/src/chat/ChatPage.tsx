import { useCallback, useEffect, useReducer, useRef, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { ChatRequest, ConversationSummary, LimitUsage, ModelCard } from "../api/types";
import { navigate } from "../location";
import { Answer } from "./Answer";
import "./chat.css";
import { Compare } from "./Compare";
import { Composer } from "./Composer";
import { examplesFor } from "./examples";
import { QuotaMeter } from "./QuotaMeter";
import { Question } from "./Question";
import { Sidebar } from "./Sidebar";
import { chatReducer, emptyChat, history, storedFrom, type AnswerTurn, type Comparing, type UserTurn } from "./turns";

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

// An open comparison survives a reload (per tab): both answers are stored as exchanges
// until one is kept, and this says which two to show side by side again.
const COMPARING = "expertgate-comparing:";

function savedComparison(conversationId: string): Comparing | null {
  try {
    const raw = sessionStorage.getItem(COMPARING + conversationId);
    const value = raw ? (JSON.parse(raw) as Partial<Comparing>) : null;
    return typeof value?.original === "string" && typeof value.other === "string"
      ? { original: value.original, other: value.other }
      : null;
  } catch {
    return null;
  }
}

function saveComparison(conversationId: string, comparing: Comparing | null): void {
  try {
    if (comparing) sessionStorage.setItem(COMPARING + conversationId, JSON.stringify(comparing));
    else sessionStorage.removeItem(COMPARING + conversationId);
  } catch {
    // Storage refused (private mode, quota): a reload shows the two exchanges one after the other.
  }
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
  const [search, setSearch] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const [keeping, setKeeping] = useState(false);
  const [compareError, setCompareError] = useState<string | null>(null);
  const abortRef = useRef<AbortController | null>(null);
  const bottomRef = useRef<HTMLDivElement>(null);
  const experts = models.map((m) => m.id).filter((id) => id !== "auto");
  const query = search.trim();

  const refreshList = useCallback(async () => {
    try {
      const page = await api.conversations(undefined, 30, query || undefined);
      setList(page.data);
      setCursor(page.next_cursor);
      setListError(null);
    } catch (err) {
      setListError(`Could not load conversations: ${message(err)}`);
    }
  }, [api, query]);

  // Quota left; a server without /me/usage just shows no meter.
  const refreshUsage = useCallback(async () => {
    try {
      setUsage(await api.usage());
    } catch {
      setUsage(null);
    }
  }, [api]);

  useEffect(() => {
    void refreshUsage();
  }, [refreshUsage]);

  // The list, and again for each search (typing settles for a moment first).
  useEffect(() => {
    const timer = setTimeout(() => void refreshList(), query ? 250 : 0);
    return () => clearTimeout(timer);
  }, [refreshList, query]);

  // Follow the URL: a new chat, or load a stored conversation (unless we just made it).
  useEffect(() => {
    if (conversationId === chat.conversationId) return;
    abortRef.current?.abort();
    setLoadError(null);
    dispatch({ type: "reset", conversationId });
    setNotice(null);
    setCompareError(null);
    // An expert picked by hand was for that conversation; the next one starts routed.
    setModel("auto");
    if (conversationId === null) return;
    let cancelled = false;
    api.conversation(conversationId).then(
      (detail) =>
        !cancelled && dispatch({ type: "loaded", detail, comparing: savedComparison(conversationId) }),
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

  /**
   * Stream one answer into the turn `key`. Resolves with its request id once it is
   * complete and stored (null: it failed or was stopped).
   */
  async function stream(
    key: string,
    messages: ChatRequest["messages"],
    ask: { model: string; fresh?: boolean },
  ): Promise<string | null> {
    const controller = new AbortController();
    abortRef.current = controller;
    const startedIn = chat.conversationId;
    setBusy(true);
    setNotice(null);
    let created: string | null = null;
    let stored: string | null = null;
    try {
      for await (const event of api.chat(
        { model: ask.model, messages, conversation_id: startedIn, stream: true },
        controller.signal,
        ask.fresh,
      )) {
        dispatch({ type: "event", key, event });
        if (event.type === "done") {
          stored = event.route?.request_id ?? null;
          if (event.route?.conversation_id && !startedIn) created = event.route.conversation_id;
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
    return stored;
  }

  /** Remove replaced exchanges from the stored conversation (after their replacement is in). */
  async function drop(conversationId: string | null, requestIds: string[]) {
    if (!conversationId || requestIds.length === 0) return;
    try {
      await api.dropExchanges(conversationId, requestIds);
    } catch (err) {
      setNotice(`The new answer is in, but the one it replaces could not be removed: ${message(err)}`);
    }
  }

  async function send(text: string) {
    const key = crypto.randomUUID();
    const messages = history(chat.turns, text);
    dispatch({ type: "asked", text, key });
    await stream(key, messages, { model });
  }

  /** What a new answer to the question before `answer` replaces: it, if it was stored. */
  function replaced(answer: AnswerTurn): string[] {
    if (answer.status === "done" && answer.requestId) return [answer.requestId];
    return answer.replaces ?? [];
  }

  async function regenerate(answer: AnswerTurn) {
    const at = chat.turns.findIndex((t) => t.key === answer.key);
    const question = chat.turns[at - 1];
    if (at < 1 || question?.kind !== "user") return;
    const key = crypto.randomUUID();
    const old = replaced(answer);
    const conversationId = chat.conversationId;
    dispatch({ type: "regenerate", replaces: answer.key, key, replaced: old });
    // An expert picked by hand answers again; otherwise the router decides again.
    const again = answer.route?.reason === "requested" ? answer.route.expert : model;
    const id = await stream(key, history(chat.turns.slice(0, at - 1), question.text), { model: again, fresh: true });
    if (id) await drop(conversationId, old);
  }

  async function edit(question: UserTurn, text: string) {
    const at = chat.turns.findIndex((t) => t.key === question.key);
    if (at < 0) return;
    const old = [
      ...storedFrom(chat.turns, at),
      ...chat.turns.slice(at).flatMap((t) => (t.kind === "answer" && t.status !== "done" ? (t.replaces ?? []) : [])),
    ];
    const conversationId = chat.conversationId;
    const key = crypto.randomUUID();
    dispatch({ type: "edited", question: question.key, text, key, replaced: old });
    const id = await stream(key, history(chat.turns.slice(0, at), text), { model });
    if (id) await drop(conversationId, old);
  }

  async function compare(answer: AnswerTurn, expert: string) {
    const at = chat.turns.findIndex((t) => t.key === answer.key);
    const question = chat.turns[at - 1];
    if (at < 1 || question?.kind !== "user") return;
    const key = crypto.randomUUID();
    setCompareError(null);
    dispatch({ type: "compare", of: answer.key, key });
    const conversationId = chat.conversationId;
    const id = await stream(key, history(chat.turns.slice(0, at - 1), question.text), { model: expert, fresh: true });
    if (id && conversationId && answer.requestId) saveComparison(conversationId, { original: answer.requestId, other: id });
  }

  /**
   * Keep one of two compared answers. The other leaves the conversation; the choice is
   * routing feedback on the one not kept: "this question should have gone to <kept>",
   * which becomes a training example for the router (and shows in the console's log).
   */
  async function keep(turn: AnswerTurn, which: "original" | "other") {
    const other = turn.other;
    if (!other) return;
    const [kept, dropped] = which === "original" ? [turn, other] : [other, turn];
    const keptExpert = kept.route?.expert;
    setKeeping(true);
    setCompareError(null);
    try {
      if (dropped.status === "done" && dropped.requestId && keptExpert) {
        try {
          await api.feedback({
            request_id: dropped.requestId,
            rating: "down",
            expected_expert: keptExpert,
            comment: `Compared the ${turn.route?.expert ?? "first"} and ${other.route?.expert ?? "other"} answers; kept the ${keptExpert} answer.`,
          });
        } catch (err) {
          if (!(err instanceof ApiError && err.missingEndpoint)) throw err;
        }
        if (chat.conversationId) await api.dropExchanges(chat.conversationId, [dropped.requestId]);
      }
      dispatch({ type: "kept", of: turn.key, keep: which });
      if (chat.conversationId) saveComparison(chat.conversationId, null);
      setNotice(
        dropped.status === "done" && keptExpert
          ? `Kept the ${keptExpert} answer. Your choice was sent to the router as feedback.`
          : `Kept the ${keptExpert ?? "first"} answer.`,
      );
      void refreshList();
    } catch (err) {
      setCompareError(`Could not keep that answer: ${message(err)}`);
    } finally {
      setKeeping(false);
    }
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
      const page = await api.conversations(cursor, 30, query || undefined);
      setList((prev) => [...prev, ...page.data]);
      setCursor(page.next_cursor);
    } catch (err) {
      setListError(message(err));
    }
  }

  const comparing = chat.turns.some((t) => t.kind === "answer" && !!t.other);

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
        onRename={async (c, title) => {
          await api.renameConversation(c.id, title);
          await refreshList();
        }}
        search={search}
        onSearch={setSearch}
        onMore={more}
      >
        <QuotaMeter usage={usage} />
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
          {chat.turns.map((turn, i) => {
            const last = i === chat.turns.length - 1;
            if (turn.kind === "user") {
              return (
                <Question
                  key={turn.key}
                  turn={turn}
                  onEdit={busy || comparing ? undefined : (text) => void edit(turn, text)}
                />
              );
            }
            if (turn.other) {
              return (
                <Compare
                  key={turn.key}
                  api={api}
                  turn={{ ...turn, other: turn.other }}
                  experts={experts}
                  keeping={keeping || busy}
                  error={compareError}
                  onKeep={(which) => void keep(turn, which)}
                />
              );
            }
            return (
              <Answer
                key={turn.key}
                api={api}
                turn={turn}
                experts={experts}
                onRegenerate={last && !busy ? () => void regenerate(turn) : undefined}
                onCompare={last && !busy && chat.conversationId ? (expert) => void compare(turn, expert) : undefined}
              />
            );
          })}
          {notice && (
            <p className="chat-notice small" role="status">
              {notice}
            </p>
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
          blocked={comparing && !busy ? "Keep one of the two answers above to go on." : null}
          onSend={(t) => void send(t)}
          onStop={() => abortRef.current?.abort()}
        />
      </main>
    </div>
  );
}

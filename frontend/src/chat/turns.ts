// The chat transcript as a reducer: pure, so the streaming logic is unit-tested.
import type { StreamEvent } from "../api/stream";
import { routeView, type ConversationDetail, type RouteView, type Usage } from "../api/types";
import { answerErrorText } from "./overQuota";

export interface UserTurn {
  kind: "user";
  key: string;
  text: string;
}

export interface AnswerTurn {
  kind: "answer";
  key: string;
  text: string;
  status: "streaming" | "done" | "error" | "stopped";
  route: RouteView | null;
  requestId: string | null;
  error: string | null;
  usage: Usage | null;
  /** Why the model stopped ("stop", "length": cut at the token cap); null: not told (stored). */
  finishReason: string | null;
  /**
   * "Ask another expert": the other expert's answer to the same question, shown beside
   * this one until the user keeps one of the two (null: no comparison open).
   */
  other?: AnswerTurn | null;
  /**
   * Stored exchanges (request ids) this answer takes the place of, once it is complete:
   * kept while it streams or if it fails, so that trying again still replaces them.
   */
  replaces?: string[];
}

export type Turn = UserTurn | AnswerTurn;

export interface ChatState {
  conversationId: string | null;
  turns: Turn[];
}

export type ChatAction =
  | { type: "reset"; conversationId: string | null }
  /** `comparing`: a comparison left open (by request ids) when the page was last shown. */
  | { type: "loaded"; detail: ConversationDetail; comparing?: Comparing | null }
  | { type: "asked"; text: string; key: string }
  | { type: "event"; key: string; event: StreamEvent }
  | { type: "stopped"; key: string }
  /** A new answer to the same question streams in place of answer `replaces`. */
  | { type: "regenerate"; replaces: string; key: string; replaced: string[] }
  /** The question `question` is edited: it and everything after it give way to `text`. */
  | { type: "edited"; question: string; text: string; key: string; replaced: string[] }
  /** Answer `of` gets another expert's answer (`key`) beside it. */
  | { type: "compare"; of: string; key: string }
  /** Of answer `of` and its comparison, `keep` stays in the conversation. */
  | { type: "kept"; of: string; keep: "original" | "other" };

export const emptyChat: ChatState = { conversationId: null, turns: [] };

/** An open "ask another expert": the request ids of the first answer and the other. */
export interface Comparing {
  original: string;
  other: string;
}

/**
 * Stored turns with a comparison put back together: when the last two exchanges are
 * the compared pair (the other expert's answer is stored as an exchange of its own
 * until one is kept), the last one is shown beside the first again. Unchanged otherwise.
 */
export function reopenComparison(turns: Turn[], comparing: Comparing | null | undefined): Turn[] {
  if (!comparing || turns.length < 4) return turns;
  const [q1, first, q2, other] = turns.slice(-4);
  if (q1?.kind !== "user" || first?.kind !== "answer" || q2?.kind !== "user" || other?.kind !== "answer") return turns;
  if (first.requestId !== comparing.original || other.requestId !== comparing.other) return turns;
  return [...turns.slice(0, -4), q1, { ...first, other }];
}

/** An answer still streaming or that has not started: no text, no route yet. */
export function pendingAnswer(key: string): AnswerTurn {
  return {
    kind: "answer",
    key,
    text: "",
    status: "streaming",
    route: null,
    requestId: null,
    error: null,
    usage: null,
    finishReason: null,
    other: null,
  };
}

/** Applies `fn` to the answer with `key`, also when it is the comparison beside another. */
function updateAnswer(state: ChatState, key: string, fn: (t: AnswerTurn) => AnswerTurn): ChatState {
  return {
    ...state,
    turns: state.turns.map((t) => {
      if (t.kind !== "answer") return t;
      if (t.key === key) return fn(t);
      if (t.other?.key === key) return { ...t, other: fn(t.other) };
      return t;
    }),
  };
}

/** The request id of each stored exchange from turn `from` on (what an edit replaces). */
export function storedFrom(turns: Turn[], from: number): string[] {
  return turns
    .slice(from)
    .filter((t): t is AnswerTurn => t.kind === "answer" && t.status === "done" && t.requestId !== null)
    .map((t) => t.requestId as string);
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "reset":
      return { conversationId: action.conversationId, turns: [] };
    case "loaded": {
      const turns = action.detail.messages
          .filter((m) => m.role !== "system")
          .map((m): Turn =>
            m.role === "user"
              ? { kind: "user", key: `m${m.id}`, text: m.content }
              : {
                  kind: "answer",
                  key: `m${m.id}`,
                  text: m.content,
                  status: "done",
                  route: m.route ? routeView(m.route) : null,
                  requestId: m.request_id,
                  error: null,
                  usage: null,
                  finishReason: null,
                  other: null,
                },
          );
      return { conversationId: action.detail.id, turns: reopenComparison(turns, action.comparing) };
    }
    case "asked":
      return {
        ...state,
        turns: [...state.turns, { kind: "user", key: `u${action.key}`, text: action.text }, pendingAnswer(action.key)],
      };
    case "regenerate":
      return {
        ...state,
        turns: state.turns.map((t) =>
          t.kind === "answer" && t.key === action.replaces ? { ...pendingAnswer(action.key), replaces: action.replaced } : t,
        ),
      };
    case "edited": {
      const at = state.turns.findIndex((t) => t.kind === "user" && t.key === action.question);
      if (at < 0) return state;
      return {
        ...state,
        turns: [
          ...state.turns.slice(0, at),
          { kind: "user", key: `u${action.key}`, text: action.text },
          { ...pendingAnswer(action.key), replaces: action.replaced },
        ],
      };
    }
    case "compare":
      return {
        ...state,
        turns: state.turns.map((t) =>
          t.kind === "answer" && t.key === action.of ? { ...t, other: pendingAnswer(action.key) } : t,
        ),
      };
    case "kept":
      return {
        ...state,
        turns: state.turns.map((t) => {
          if (t.kind !== "answer" || t.key !== action.of || !t.other) return t;
          return action.keep === "other" ? { ...t.other, other: null } : { ...t, other: null };
        }),
      };
    case "stopped":
      return updateAnswer(state, action.key, (t) =>
        t.status === "streaming" ? { ...t, status: "stopped" } : t,
      );
    case "event": {
      const { event, key } = action;
      if (event.type === "done" && event.route?.conversation_id) {
        state = { ...state, conversationId: event.route.conversation_id };
      }
      return updateAnswer(state, key, (t) => {
        switch (event.type) {
          case "route":
            return { ...t, route: routeView(event.route), requestId: event.route.request_id };
          case "delta":
            return { ...t, text: t.text + event.text };
          case "done":
            return {
              ...t,
              status: "done",
              route: event.route ? routeView(event.route) : t.route,
              requestId: event.route?.request_id ?? t.requestId,
              usage: event.usage,
              finishReason: event.finishReason,
            };
          case "error":
            return { ...t, status: "error", error: answerErrorText(event.error) };
          case "limits":
            return t; // shown by the quota meter, not in the answer
        }
      });
    }
  }
}

/**
 * The OpenAI `messages` to send for a new question: earlier exchanges (the expert needs
 * the context) bounded by count and size, then the question. A complete exchange goes as
 * its question and answer; a stopped one as the user left it, its question and the words
 * that had arrived (the question alone if none had); a failed one not at all.
 */
export function history(
  turns: Turn[],
  question: string,
  limits = { messages: 20, chars: 24_000 },
): { role: "user" | "assistant"; content: string }[] {
  const out: { role: "user" | "assistant"; content: string }[] = [];
  let chars = question.length;
  for (let i = turns.length - 1; i >= 1; i--) {
    const answer = turns[i];
    const asked = turns[i - 1];
    if (answer?.kind !== "answer" || asked?.kind !== "user") continue;
    if (answer.status !== "stopped" && (answer.status !== "done" || !answer.text)) continue;
    const exchange: typeof out = [{ role: "user", content: asked.text }];
    if (answer.text) exchange.push({ role: "assistant", content: answer.text });
    const size = answer.text.length + asked.text.length;
    if (out.length + exchange.length > limits.messages - 1 || chars + size > limits.chars) break;
    out.unshift(...exchange);
    chars += size;
    i--;
  }
  out.push({ role: "user", content: question });
  return out;
}

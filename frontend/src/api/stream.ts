// Streaming chat completions over SSE (POST, so fetch + a body reader, not EventSource).
//
// The server sends OpenAI chunks; the first and the last carry an `expertgate` object
// (who answers and why; the last also the conversation id and citations). A failure
// after the stream opened arrives as a data frame holding {"error": {...}}.
import { authHeaders } from "./auth";
import { ApiError, toApiError } from "./errors";
import type { ChatRequest, RouteInfo, Usage } from "./types";

export type StreamEvent =
  | { type: "limits"; limits: RateLimit[] }
  | { type: "route"; route: RouteInfo }
  | { type: "delta"; text: string }
  | { type: "done"; route: RouteInfo | null; usage: Usage | null; finishReason: string | null }
  | { type: "error"; error: ApiError };

/** One limit the server reported in its `x-ratelimit-*` headers (the tightest of its kind). */
export interface RateLimit {
  kind: "requests" | "tokens";
  limit: number;
  remaining: number;
  reset: string; // as sent, e.g. "42s"
}

/** The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers; [] when quotas are off. */
export function rateLimits(headers: Headers): RateLimit[] {
  const out: RateLimit[] = [];
  for (const kind of ["requests", "tokens"] as const) {
    const limit = headers.get(`x-ratelimit-limit-${kind}`);
    const remaining = headers.get(`x-ratelimit-remaining-${kind}`);
    if (limit === null || remaining === null) continue;
    out.push({ kind, limit: Number(limit), remaining: Number(remaining), reset: headers.get(`x-ratelimit-reset-${kind}`) ?? "" });
  }
  return out;
}

/** Splits an SSE byte stream (as text) into the payloads of its `data:` fields. */
export class SseDecoder {
  private buffer = "";

  /** Feed more text; returns the payloads of every event completed by it. */
  push(text: string): string[] {
    this.buffer += text.replace(/\r\n?/g, "\n");
    const out: string[] = [];
    let end: number;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""));
      if (data.length) out.push(data.join("\n"));
    }
    return out;
  }
}

interface Chunk {
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
  usage?: Usage;
  expertgate?: RouteInfo;
  error?: { message: string; code?: string | null; param?: string | null };
}

/** The events one `data:` payload stands for ("[DONE]" stands for none). */
export function interpret(payload: string): StreamEvent[] {
  if (payload === "[DONE]") return [];
  let chunk: Chunk;
  try {
    chunk = JSON.parse(payload) as Chunk;
  } catch {
    return [{ type: "error", error: new ApiError(0, "the server sent a malformed event") }];
  }
  if (chunk.error) return [{ type: "error", error: toApiError(500, chunk) }];
  const choice = chunk.choices?.[0];
  const events: StreamEvent[] = [];
  const finish = choice?.finish_reason ?? null;
  if (chunk.expertgate && finish === null) events.push({ type: "route", route: chunk.expertgate });
  const text = choice?.delta?.content;
  if (text) events.push({ type: "delta", text });
  if (finish !== null) {
    events.push({
      type: "done",
      route: chunk.expertgate ?? null,
      usage: chunk.usage ?? null,
      finishReason: finish,
    });
  }
  return events;
}

/**
 * POST a streamed chat completion and yield its events until the stream ends. `fresh`
 * asks for a newly generated answer (`Cache-Control: no-cache`: a regenerated answer
 * must not be a cached copy of the one it replaces).
 */
export async function* streamChat(
  fetchFn: typeof fetch,
  url: string,
  key: string | null,
  body: ChatRequest,
  signal?: AbortSignal,
  fresh = false,
): AsyncGenerator<StreamEvent> {
  let response: Response;
  try {
    response = await fetchFn(url, {
      method: "POST",
      headers: {
        ...authHeaders(key),
        "content-type": "application/json",
        accept: "text/event-stream",
        ...(fresh ? { "cache-control": "no-cache" } : {}),
      },
      body: JSON.stringify({ ...body, stream: true }),
      signal,
    });
  } catch (err) {
    if (signal?.aborted) return;
    yield { type: "error", error: new ApiError(0, `the server could not be reached (${err})`) };
    return;
  }
  const limits = rateLimits(response.headers);
  if (limits.length) yield { type: "limits", limits };
  if (!response.ok || !response.body) {
    yield { type: "error", error: toApiError(response.status, await response.json().catch(() => null)) };
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const decoder = new SseDecoder();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const payload of decoder.push(value)) {
        for (const event of interpret(payload)) {
          if (event.type === "done" || event.type === "error") finished = true;
          yield event;
        }
      }
    }
  } catch (err) {
    if (signal?.aborted) return;
    yield { type: "error", error: new ApiError(0, `the connection broke (${err})`) };
    return;
  } finally {
    reader.releaseLock();
  }
  if (!finished && !signal?.aborted) {
    yield { type: "error", error: new ApiError(0, "the answer stopped before it was complete") };
  }
}

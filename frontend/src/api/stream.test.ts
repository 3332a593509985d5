import { describe, expect, it } from "vitest";

import { interpret, SseDecoder, streamChat, type StreamEvent } from "./stream";

const route = {
  expert: "code",
  confidence: 0.91,
  reason: "routed",
  router_version: "v1",
  top_k: ["code"],
  probabilities: { code: 0.91, general: 0.09 },
  citations: [],
  fallbacks: [],
  request_id: "req-1",
  conversation_id: null,
};

function frame(payload: unknown): string {
  return `data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`;
}

const first = frame({ choices: [{ delta: { role: "assistant", content: "" }, finish_reason: null }], expertgate: route });
const delta = (text: string) => frame({ choices: [{ delta: { content: text }, finish_reason: null }] });
const last = frame({
  choices: [{ delta: {}, finish_reason: "stop" }],
  usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  expertgate: { ...route, conversation_id: "conv-1" },
});

/** A fetch answering with `body` split into the given pieces (as a network would). */
function fakeFetch(pieces: string[], status = 200, json?: unknown): typeof fetch {
  return (async () => {
    if (json !== undefined) return new Response(JSON.stringify(json), { status });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const p of pieces) controller.enqueue(new TextEncoder().encode(p));
        controller.close();
      },
    });
    return new Response(stream, { status, headers: { "content-type": "text/event-stream" } });
  }) as typeof fetch;
}

async function collect(gen: AsyncGenerator<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

const body = { model: "auto", messages: [{ role: "user" as const, content: "hi" }] };

describe("SseDecoder", () => {
  it("reassembles events split anywhere, with CRLF line ends", () => {
    const d = new SseDecoder();
    const text = 'data: {"a":1}\r\n\r\ndata: [DONE]\n\n';
    const out: string[] = [];
    for (const ch of text) out.push(...d.push(ch));
    expect(out).toEqual(['{"a":1}', "[DONE]"]);
  });

  it("joins multi-line data fields and ignores comments", () => {
    const d = new SseDecoder();
    expect(d.push(": keep-alive\n\ndata: line1\ndata: line2\n\n")).toEqual(["line1\nline2"]);
  });
});

describe("interpret", () => {
  it("maps first, middle and last chunks", () => {
    expect(interpret(first.slice(6).trim())).toEqual([{ type: "route", route }]);
    expect(interpret(delta("Hel").slice(6).trim())).toEqual([{ type: "delta", text: "Hel" }]);
    const done = interpret(last.slice(6).trim());
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ type: "done", finishReason: "stop", usage: { total_tokens: 7 } });
    expect(interpret("[DONE]")).toEqual([]);
  });

  it("turns an error frame into an error event with its code", () => {
    const [event] = interpret(JSON.stringify({ error: { message: "down", code: "expert_unavailable" } }));
    expect(event?.type).toBe("error");
    if (event?.type === "error") {
      expect(event.error.message).toBe("down");
      expect(event.error.code).toBe("expert_unavailable");
    }
  });
});

describe("streamChat", () => {
  it("yields route, deltas and done across arbitrary network chunks", async () => {
    const whole = first + delta("Hel") + delta("lo") + last + "data: [DONE]\n\n";
    const pieces = [whole.slice(0, 7), whole.slice(7, 150), whole.slice(150)];
    const events = await collect(streamChat(fakeFetch(pieces), "/v1/chat/completions", "k", body));
    expect(events.map((e) => e.type)).toEqual(["route", "delta", "delta", "done"]);
    const text = events.flatMap((e) => (e.type === "delta" ? [e.text] : [])).join("");
    expect(text).toBe("Hello");
    const done = events[3];
    expect(done?.type === "done" && done.route?.conversation_id).toBe("conv-1");
  });

  it("reports an HTTP error before the stream with the API's message", async () => {
    const events = await collect(
      streamChat(
        fakeFetch([], 404, { error: { message: "no such model", code: "model_not_found", param: "model" } }),
        "/v1/chat/completions",
        "k",
        body,
      ),
    );
    expect(events).toHaveLength(1);
    expect(events[0]?.type === "error" && events[0].error.code).toBe("model_not_found");
  });

  it("reports a stream that ends without its last chunk", async () => {
    const events = await collect(streamChat(fakeFetch([first, delta("par")]), "/x", "k", body));
    expect(events.map((e) => e.type)).toEqual(["route", "delta", "error"]);
  });

  it("sends stream: true, the key and the conversation id", async () => {
    let seen: RequestInit | undefined;
    const fetchFn = (async (_url: string, init?: RequestInit) => {
      seen = init;
      return fakeFetch([first, last])("/x");
    }) as unknown as typeof fetch;
    await collect(streamChat(fetchFn, "/x", "secret", { ...body, conversation_id: "c9" }));
    expect(JSON.parse(String(seen?.body))).toMatchObject({ stream: true, conversation_id: "c9", model: "auto" });
    expect((seen?.headers as Record<string, string>).authorization).toBe("Bearer secret");
  });
});

// The chat's flows (issue 26) against a fake server that keeps what it is told: regenerate,
// ask another expert, edit and resend, search and rename, cited sentences, the whole document.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { ModelCard } from "../api/types";
import { parsePath, usePath } from "../location";
import { Markdown } from "../markdown/Markdown";
import { Answer } from "./Answer";
import { ChatPage } from "./ChatPage";
import { citedSection, DocumentDialog } from "./DocumentDialog";
import { citedSentences } from "./sentences";
import { chatReducer, reopenComparison, storedFrom, type AnswerTurn, type ChatState, type Turn } from "./turns";

const MODELS: ModelCard[] = ["auto", "code", "legal", "support", "general"].map((id) => ({
  id,
  object: "model",
  created: 0,
  owned_by: "expertgate",
  description: `the ${id} expert`,
}));

interface Stored {
  role: "user" | "assistant";
  content: string;
  request_id: string;
  expert: string | null;
}

const CITATION = {
  number: 1,
  title: "Travel policy > Booking",
  source: "upload/travel.md",
  snippet: "Book flights 14 days ahead.",
  score: 0.9,
  location: "lines 3-4",
  document_id: 7,
};

/**
 * A server that stores exchanges per conversation and answers "<expert> answer N [1].".
 * Answer `holdAt` (1-based) sends its first words, "<expert> partial N", and then nothing
 * until the client aborts; like the real server it stores nothing of an answer not finished.
 */
function fakeServer({ holdAt }: { holdAt?: number } = {}) {
  const asked: { model: string; messages: { role: string; content: string }[]; fresh: boolean }[] = [];
  const dropped: string[][] = [];
  const feedback: Record<string, unknown>[] = [];
  const renamed: { id: string; title: string }[] = [];
  const searched: string[] = [];
  const conversations = new Map<string, { title: string; messages: Stored[] }>();
  let n = 0;
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(req.url);
    const path = url.pathname;
    const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });
    if (path === "/v1/chat/completions") {
      const body = (await req.json()) as { model: string; messages: { role: string; content: string }[]; conversation_id: string | null };
      asked.push({ model: body.model, messages: body.messages, fresh: req.headers.get("cache-control") === "no-cache" });
      n += 1;
      const expert = body.model === "auto" ? "legal" : body.model;
      const requestId = `req-${n}`;
      const id = body.conversation_id ?? "c1";
      const question = body.messages.at(-1)!.content;
      const choice = (delta: object, finish: string | null) => [{ index: 0, delta, finish_reason: finish }];
      const frame = (chunk: object) => new TextEncoder().encode(`data: ${JSON.stringify(chunk)}\n\n`);
      if (n === holdAt) {
        const signal = init?.signal ?? req.signal;
        const held = new ReadableStream<Uint8Array>({
          start(body) {
            body.enqueue(frame({ choices: choice({ role: "assistant", content: "" }, null), expertgate: { expert, confidence: 0.9, reason: "routed", router_version: "v1", top_k: [expert], probabilities: {}, citations: [], fallbacks: [], request_id: requestId, conversation_id: null } }));  // prettier-ignore
            body.enqueue(frame({ choices: choice({ content: `${expert} partial ${n}` }, null) }));
            // As a browser's fetch does: aborting it errors the body being read.
            signal?.addEventListener("abort", () => body.error(new DOMException("aborted", "AbortError")));
          },
        });
        return new Response(held, { status: 200, headers: { "content-type": "text/event-stream" } });
      }
      const conv = conversations.get(id) ?? { title: question, messages: [] };
      const text = `${expert} answer ${n} [1].`;
      conv.messages.push(
        { role: "user", content: question, request_id: requestId, expert: null },
        { role: "assistant", content: text, request_id: requestId, expert },
      );
      conversations.set(id, conv);
      const route = {
        expert, confidence: 0.9, reason: body.model === "auto" ? "routed" : "requested", router_version: "v1",
        top_k: [expert], probabilities: {}, citations: [CITATION], fallbacks: [], request_id: requestId,
        conversation_id: id, upstream_model: "tiny-model",
      };  // prettier-ignore
      const sse = [
        { choices: choice({ role: "assistant", content: "" }, null), expertgate: { ...route, conversation_id: null } },
        { choices: choice({ content: text }, null) },
        { choices: choice({}, "stop"), expertgate: route },
      ]
        .map((c) => `data: ${JSON.stringify(c)}\n\n`)
        .join("");
      return new Response(`${sse}data: [DONE]\n\n`, { status: 200, headers: { "content-type": "text/event-stream" } });
    }
    if (path === "/api/v1/conversations") {
      const q = url.searchParams.get("q");
      if (q) searched.push(q);
      const data = [...conversations.entries()]
        .filter(([, c]) => !q || c.title.includes(q) || c.messages.some((m) => m.content.includes(q)))
        .map(([id, c]) => ({
          id, title: c.title, channel: "web", created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z",
          match: q ? (c.messages.find((m) => m.content.includes(q))?.content ?? null) : null,
        }));  // prettier-ignore
      return json({ data, next_cursor: null });
    }
    if (path === "/api/v1/me/usage") return json({ limits: [] });
    if (path === "/api/v1/feedback") {
      feedback.push((await req.json()) as Record<string, unknown>);
      return json({ id: feedback.length }, 201);
    }
    if (path === "/api/v1/documents/7/text") {
      return json({
        document: { id: 7, domain: "legal", source: "upload/travel.md", title: "Travel policy" },
        sections: [
          { ordinal: 0, title_path: ["Travel policy"], location: "lines 1-2", text: "Applies to all staff." },
          { ordinal: 1, title_path: ["Travel policy", "Booking"], location: "lines 3-4", text: "Book flights 14 days ahead." },
        ],
      });
    }
    const drop = /^\/api\/v1\/conversations\/([^/]+)\/drop-exchanges$/.exec(path);
    if (drop) {
      const ids = ((await req.json()) as { request_ids: string[] }).request_ids;
      dropped.push(ids);
      const conv = conversations.get(drop[1]!)!;
      conv.messages = conv.messages.filter((m) => !ids.includes(m.request_id));
      return json({ id: drop[1], title: conv.title, channel: "web", created_at: "", updated_at: "", messages: [] });
    }
    const one = /^\/api\/v1\/conversations\/([^/]+)$/.exec(path);
    if (one && req.method === "PATCH") {
      const title = ((await req.json()) as { title: string }).title;
      renamed.push({ id: one[1]!, title });
      conversations.get(one[1]!)!.title = title;
      return json({ id: one[1], title, channel: "web", created_at: "", updated_at: "" });
    }
    if (one) {
      const conv = conversations.get(one[1]!);
      if (!conv) return json({ error: { message: "no" } }, 404);
      return json({
        id: one[1], title: conv.title, channel: "web", created_at: "", updated_at: "",
        messages: conv.messages.map((m, i) => ({
          id: i + 1, role: m.role, content: m.content, request_id: m.request_id, created_at: "",
          expert: m.expert, route: m.expert ? { expert: m.expert, reason: "routed", citations: [CITATION], upstream_model: "tiny-model" } : null,
          prompt_tokens: 0, completion_tokens: 0,
        })),
      });  // prettier-ignore
    }
    return json({ detail: "Not Found" }, 404);
  }) as typeof fetch;
  const api = new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn });
  return { api, asked, dropped, feedback, renamed, searched, conversations };
}

function Routed({ api }: { api: Api }) {
  const view = parsePath(usePath());
  const id = view.page === "chat" ? view.conversationId : null;
  return <ChatPage api={api} models={MODELS} conversationId={id} sidebarOpen={false} onCloseSidebar={() => {}} />;
}

beforeEach(() => window.history.replaceState(null, "", "/"));
afterEach(() => window.history.replaceState(null, "", "/"));

async function ask(text: string) {
  await userEvent.type(screen.getByLabelText("Your question"), `${text}{Enter}`);
}

function answers() {
  return screen.getAllByTestId("answer");
}

describe("regenerate", () => {
  it("replaces the last answer in place, asks afresh, and drops the old exchange once the new one is in", async () => {
    const server = fakeServer();
    render(<Routed api={server.api} />);
    await ask("first question");
    await waitFor(() => expect(answers().at(-1)!.getAttribute("data-status")).toBe("done"));
    await ask("second question");
    await waitFor(() => expect(screen.getByText(/legal answer 2/)).toBeTruthy());
    // Only the last answer offers it.
    expect(within(answers()[0]!).queryByRole("button", { name: /Regenerate/ })).toBeNull();
    await userEvent.click(within(answers()[1]!).getByRole("button", { name: /Regenerate/ }));
    await waitFor(() => expect(screen.getByText(/legal answer 3/)).toBeTruthy());
    expect(answers()).toHaveLength(2);
    expect(screen.queryByText(/legal answer 2/)).toBeNull();
    const again = server.asked.at(-1)!;
    expect(again.fresh).toBe(true);
    expect(again.messages.map((m) => m.content)).toEqual(["first question", "legal answer 1 [1].", "second question"]);
    await waitFor(() => expect(server.dropped).toEqual([["req-2"]]));
    expect(server.conversations.get("c1")!.messages.map((m) => m.content)).toEqual([
      "first question", "legal answer 1 [1].", "second question", "legal answer 3 [1].",
    ]);  // prettier-ignore
  });
});

describe("ask another expert", () => {
  it("shows both answers, keeps the chosen one and sends the preference as routing feedback", async () => {
    const server = fakeServer();
    render(<Routed api={server.api} />);
    await ask("what is the cap?");
    await waitFor(() => expect(answers()[0]!.getAttribute("data-status")).toBe("done"));
    const actions = within(answers()[0]!).getByRole("group", { name: "Answer actions" });
    await userEvent.selectOptions(within(actions).getByLabelText("Ask another expert"), "support");
    await userEvent.click(within(actions).getByRole("button", { name: "Compare" }));
    const compare = await screen.findByTestId("compare");
    await waitFor(() => expect(within(compare).getByText(/support answer 2/)).toBeTruthy());
    expect(within(compare).getByText(/legal answer 1/)).toBeTruthy();
    expect(server.asked.at(-1)).toMatchObject({ model: "support", fresh: true });
    // Nothing new can be asked until one is kept.
    expect(screen.getByText("Keep one of the two answers above to go on.")).toBeTruthy();
    await userEvent.click(within(compare).getByRole("button", { name: "Keep the support answer" }));
    await waitFor(() => expect(screen.queryByTestId("compare")).toBeNull());
    expect(server.feedback).toEqual([
      expect.objectContaining({ request_id: "req-1", rating: "down", expected_expert: "support" }),
    ]);
    expect(server.dropped).toEqual([["req-1"]]);
    expect(screen.getByRole("status").textContent).toMatch(/Kept the support answer/);
    expect(answers()).toHaveLength(1);
    expect(within(answers()[0]!).getByTestId("answer-model").textContent).toBe("support expert · model tiny-model");
  });
});

describe("stop", () => {
  it("keeps the stopped question and its words so far, and sends them with the next question", async () => {
    const server = fakeServer({ holdAt: 2 });
    render(<Routed api={server.api} />);
    await ask("first question");
    await waitFor(() => expect(answers()[0]!.getAttribute("data-status")).toBe("done"));
    await ask("second question");
    await screen.findByText("legal partial 2");
    await userEvent.keyboard("{Escape}");
    await waitFor(() => expect(answers()[1]!.getAttribute("data-status")).toBe("stopped"));
    expect(within(answers()[1]!).getByText("Stopped.")).toBeTruthy();
    const questions = () => screen.getAllByTestId("question").map((q) => q.querySelector("p")!.textContent);
    expect(questions()).toEqual(["first question", "second question"]);

    await ask("third question");
    await waitFor(() => expect(answers()[2]!.getAttribute("data-status")).toBe("done"));
    expect(questions()).toEqual(["first question", "second question", "third question"]);
    expect(answers()[1]!.textContent).toContain("legal partial 2");
    expect(server.asked.at(-1)!.messages.map((m) => m.content)).toEqual([
      "first question", "legal answer 1 [1].", "second question", "legal partial 2", "third question",
    ]);  // prettier-ignore
  });
});

describe("edit and resend", () => {
  it("sends the edited question with the history before it and replaces what followed", async () => {
    const server = fakeServer();
    render(<Routed api={server.api} />);
    await ask("one");
    await waitFor(() => expect(screen.getByText(/legal answer 1/)).toBeTruthy());
    await ask("two");
    await waitFor(() => expect(screen.getByText(/legal answer 2/)).toBeTruthy());
    await userEvent.click(screen.getByRole("button", { name: "Edit question: one" }));
    const box = screen.getByLabelText("Edited question");
    await userEvent.clear(box);
    await userEvent.type(box, "one, edited{Enter}");
    await waitFor(() => expect(screen.getByText(/legal answer 3/)).toBeTruthy());
    expect(server.asked.at(-1)!.messages).toEqual([{ role: "user", content: "one, edited" }]);
    expect(screen.getAllByTestId("question").map((q) => q.querySelector("p")!.textContent)).toEqual(["one, edited"]);
    await waitFor(() => expect(server.dropped).toEqual([["req-1", "req-2"]]));
  });
});

describe("search and rename", () => {
  it("searches the server as the user types and renames in place", async () => {
    const server = fakeServer();
    render(<Routed api={server.api} />);
    await ask("liability cap");
    await waitFor(() => expect(screen.getByRole("link", { name: /liability cap/ })).toBeTruthy());
    const nav = screen.getByRole("navigation", { name: "Conversations" });
    await userEvent.type(within(nav).getByLabelText("Search conversations"), "nothing like it");
    await waitFor(() => expect(within(nav).getByText("No conversation holds “nothing like it”.")).toBeTruthy());
    expect(server.searched.at(-1)).toBe("nothing like it");
    await userEvent.clear(within(nav).getByLabelText("Search conversations"));
    await userEvent.type(within(nav).getByLabelText("Search conversations"), "answer 1");
    await waitFor(() => expect(within(nav).getByTestId("search-match").textContent).toBe("legal answer 1 [1]."));
    await userEvent.click(within(nav).getByRole("button", { name: "Rename conversation: liability cap" }));
    const title = within(nav).getByLabelText("New title");
    await userEvent.clear(title);
    await userEvent.type(title, "Our MSA{Enter}");
    await waitFor(() => expect(within(nav).getByRole("link", { name: /Our MSA/ })).toBeTruthy());
    expect(server.renamed).toEqual([{ id: "c1", title: "Our MSA" }]);
  });
});

describe("citations", () => {
  it("ties each marker to the sentence it closes", () => {
    const text = "The cap is **twelve months** of fees [1]. It excludes confidentiality [2][1]. No source here.\n\n- Book early. [3]\n\n```\nx [1]\n```";
    const got = citedSentences(text, 3);
    const words = (n: number) => got.get(n)?.map((c) => c.text);
    expect(words(1)).toEqual(["The cap is twelve months of fees.", "It excludes confidentiality."]);
    expect(words(2)).toEqual(["It excludes confidentiality."]);
    expect(words(3)).toEqual(["Book early."]);
    // Each keeps its place in the text (the marker that opens "[3]" closes "Book early.").
    const [first] = got.get(1)!;
    expect(text.slice(first!.start, first!.end)).toBe("The cap is **twelve months** of fees [1].");
    expect(text.slice(got.get(3)![0]!.start, got.get(3)![0]!.end)).toBe("- Book early. [3]");
    expect(citedSentences("Beyond the sources [4].", 3).size).toBe(0);
  });

  it("wraps the cited sentence with its marker on screen", () => {
    const { container } = render(
      <Markdown text="Our policy is strict. Book flights **14 days** ahead [1]. Ask the desk." citationCount={1} />,
    );
    const spans = container.querySelectorAll(".cited-sentence");
    expect(spans).toHaveLength(1);
    expect(spans[0]!.getAttribute("data-cites")).toBe("1");
    expect(spans[0]!.textContent).toBe("Book flights 14 days ahead [1].");
    expect(within(spans[0] as HTMLElement).getByRole("button", { name: "Show source 1" })).toBeTruthy();
    expect(container.textContent).toBe("Our policy is strict. Book flights 14 days ahead [1]. Ask the desk.");
  });

  it("opens the whole document from a citation, the cited section marked", async () => {
    const server = fakeServer();
    render(<Routed api={server.api} />);
    await ask("how early do I book?");
    await waitFor(() => expect(answers()[0]!.getAttribute("data-status")).toBe("done"));
    await userEvent.click(within(answers()[0]!).getByRole("button", { name: "Show source 1" }));
    const dialog = screen.getByRole("dialog");
    expect(within(dialog).getByTestId("cited-for").textContent).toContain("legal answer 1.");
    await userEvent.click(within(dialog).getByRole("button", { name: "Read the whole document" }));
    const doc = await screen.findByTestId("document");
    await waitFor(() => expect(within(doc).getByTestId("cited-section").textContent).toContain("Book flights 14 days ahead."));
    expect(within(doc).getByText("Applies to all staff.")).toBeTruthy();
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("shows, for each sentence a source is cited for, what the grounding check found in it", async () => {
    const text = "The cap is **twelve months** of fees [1]. Ask legal@x.example first [1].";
    const at = text.indexOf("legal@x.example");
    const turn: AnswerTurn = {
      kind: "answer", key: "a", text, status: "done", requestId: "r", error: null, usage: null, finishReason: "stop",
      route: {
        expert: "legal", confidence: 0.9, reason: "routed", citations: [CITATION], fallbacks: [], probabilities: {},
        upstreamModel: null,
        grounding: {
          score: 0.5, checked: 2, action: "flag",
          unsupported: [{ start: at, end: at + 15, text: "legal@x.example", reason: "unsupported", detail: "'legal@x.example' is in none of the passages" }],
        },
      },
    };  // prettier-ignore
    render(<Answer api={fakeServer().api} turn={turn} experts={["legal", "support"]} />);
    await userEvent.click(screen.getAllByRole("button", { name: "Show source 1" })[0]!);
    const cited = within(screen.getByRole("dialog")).getByTestId("cited-for");
    const items = within(cited).getAllByRole("listitem");
    expect(items.map((li) => li.firstChild?.textContent)).toEqual(["The cap is twelve months of fees.", "Ask legal@x.example first."]);
    expect(within(items[0]!).queryByTestId("cited-finding")).toBeNull();
    expect(within(items[1]!).getByTestId("cited-finding").textContent).toBe("⚠ 'legal@x.example' is in none of the passages");
  });

  it("says so when the document may not be read (404), instead of failing", async () => {
    const fetchFn = (async () =>
      new Response(JSON.stringify({ error: { message: "document 9 does not exist", code: "document_not_found" } }), {
        status: 404,
      })) as typeof fetch;
    const api = new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn });
    render(<DocumentDialog api={api} citation={{ ...CITATION, document_id: 9 }} documentId={9} onClose={() => {}} />);
    expect((await screen.findByRole("alert")).textContent).toBe(
      "This document is not available to you any more: it was deleted, or who may read it changed.",
    );
    expect(screen.getByRole("dialog").getAttribute("aria-labelledby")).toBe("document-title-9");
  });

  it("finds the cited section by title and place, else by the snippet", () => {
    const doc = {
      document: { id: 7, domain: "legal", source: "s", title: "T", media_type: "", groups: [], chunk_count: 2, size_bytes: 1, content_hash: "", created_at: "", updated_at: "" },
      sections: [
        { ordinal: 0, title_path: ["T"], location: "line 1", text: "intro" },
        { ordinal: 1, title_path: ["T", "B"], location: "lines 2-3", text: "Book flights 14 days ahead." },
      ],
    };  // prettier-ignore
    expect(citedSection(doc, { ...CITATION, title: "T > B", location: "lines 2-3" })).toBe(1);
    expect(citedSection(doc, { ...CITATION, title: "renamed", location: null })).toBe(1);
    expect(citedSection(doc, { ...CITATION, title: "x", snippet: "absent" })).toBe(-1);
  });
});

describe("the transcript reducer", () => {
  const done = (key: string, requestId: string | null): AnswerTurn => ({
    kind: "answer", key, text: key, status: "done", route: null, requestId, error: null, usage: null, finishReason: null,
  });  // prettier-ignore

  it("lists the stored exchanges an edit replaces, and keeps what a failed retry still replaces", () => {
    const state: ChatState = {
      conversationId: "c",
      turns: [
        { kind: "user", key: "u1", text: "1" }, done("a1", "r1"),
        { kind: "user", key: "u2", text: "2" }, { ...done("a2", "r2"), status: "error" },
        { kind: "user", key: "u3", text: "3" }, done("a3", "r3"),
      ],
    };  // prettier-ignore
    expect(storedFrom(state.turns, 2)).toEqual(["r3"]);
    let s = chatReducer(state, { type: "regenerate", replaces: "a3", key: "n", replaced: ["r3"] });
    expect(s.turns.at(-1)).toMatchObject({ key: "n", status: "streaming", replaces: ["r3"] });
    s = chatReducer(s, { type: "edited", question: "u2", text: "2b", key: "m", replaced: ["r3"] });
    expect(s.turns.map((t) => t.key)).toEqual(["u1", "a1", "um", "m"]);
  });

  it("puts a comparison left open back together when the conversation is loaded again", () => {
    const turns: Turn[] = [
      { kind: "user", key: "u1", text: "q" }, done("a1", "r1"),
      { kind: "user", key: "u2", text: "q" }, done("a2", "r2"),
    ];  // prettier-ignore
    const reopened = reopenComparison(turns, { original: "r1", other: "r2" });
    expect(reopened.map((t) => t.key)).toEqual(["u1", "a1"]);
    expect((reopened[1] as AnswerTurn).other?.requestId).toBe("r2");
    // Anything else (no record, or not the last two exchanges) is shown as stored.
    expect(reopenComparison(turns, null)).toBe(turns);
    expect(reopenComparison(turns, { original: "r0", other: "r2" })).toBe(turns);
  });

  it("streams the other expert's answer beside the first and keeps the chosen one", () => {
    let s: ChatState = { conversationId: "c", turns: [{ kind: "user", key: "u", text: "q" }, done("a", "r1")] };
    s = chatReducer(s, { type: "compare", of: "a", key: "b" });
    s = chatReducer(s, { type: "event", key: "b", event: { type: "delta", text: "other" } });
    const first = s.turns[1] as AnswerTurn;
    expect(first.text).toBe("a");
    expect(first.other).toMatchObject({ key: "b", text: "other", status: "streaming" });
    expect((chatReducer(s, { type: "kept", of: "a", keep: "other" }).turns[1] as AnswerTurn).key).toBe("b");
    const kept = chatReducer(s, { type: "kept", of: "a", keep: "original" }).turns[1] as AnswerTurn;
    expect(kept.key).toBe("a");
    expect(kept.other).toBeNull();
  });
});

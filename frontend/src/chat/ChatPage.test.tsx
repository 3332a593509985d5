// The chat page against a fake server: the expert menu and the landing page (issue 26).
import { act, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { ModelCard } from "../api/types";
import { navigate, parsePath, usePath } from "../location";
import { ChatPage } from "./ChatPage";

const MODELS: ModelCard[] = ["auto", "code", "legal", "support", "general"].map((id) => ({
  id,
  object: "model",
  created: 0,
  owned_by: "expertgate",
  description: `the ${id} expert`,
}));

function sse(...chunks: object[]): string {
  return [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"].join("");
}

function route(expert: string, conversationId: string | null) {
  return {
    expert,
    confidence: null,
    reason: "requested",
    router_version: "v1",
    top_k: [expert],
    probabilities: {},
    citations: [],
    fallbacks: [],
    request_id: "req-1",
    conversation_id: conversationId,
  };
}

/** A server with one expert reply; records the chat requests' bodies. */
function fakeServer() {
  const asked: { model: string }[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    const path = new URL(req.url).pathname;
    const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200 });
    if (path === "/v1/chat/completions") {
      const body = (await req.json()) as { model: string };
      asked.push(body);
      const choice = (delta: object, finish: string | null) => [{ index: 0, delta, finish_reason: finish }];
      const text = sse(
        { choices: choice({ role: "assistant", content: "" }, null), expertgate: route(body.model, null) },
        { choices: choice({ content: "An answer." }, null) },
        { choices: choice({}, "stop"), expertgate: route(body.model, "c1") },
      );
      return new Response(text, { status: 200, headers: { "content-type": "text/event-stream" } });
    }
    if (path === "/api/v1/conversations") return json({ data: [], next_cursor: null });
    if (path === "/api/v1/me/usage") return json({ limits: [] });
    if (path.startsWith("/api/v1/conversations/")) {
      return json({ id: "c1", title: "q", channel: "web", created_at: "2026-01-01T00:00:00Z", messages: [] });
    }
    return new Response(JSON.stringify({ detail: "Not Found" }), { status: 404 });
  }) as typeof fetch;
  return { api: new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn }), asked };
}

/** The page as App mounts it: the conversation comes from the address. */
function Routed({ api }: { api: Api }) {
  const view = parsePath(usePath());
  const id = view.page === "chat" ? view.conversationId : null;
  return <ChatPage api={api} models={MODELS} conversationId={id} sidebarOpen={false} onCloseSidebar={() => {}} />;
}

beforeEach(() => window.history.replaceState(null, "", "/"));
afterEach(() => window.history.replaceState(null, "", "/"));

describe("the expert menu", () => {
  it("keeps a hand-picked expert for its conversation, and a new conversation starts on auto", async () => {
    const { api, asked } = fakeServer();
    render(<Routed api={api} />);
    const menu = screen.getByLabelText("Expert");
    await userEvent.selectOptions(menu, "legal");
    await userEvent.type(screen.getByLabelText("Your question"), "what is the cap?{Enter}");
    await waitFor(() => expect(window.location.pathname).toBe("/c/c1"));
    expect(asked.map((b) => b.model)).toEqual(["legal"]);
    // A follow-up in the same conversation stays with the hand-picked expert.
    expect((menu as HTMLSelectElement).value).toBe("legal");

    await userEvent.click(screen.getByRole("button", { name: "+ New conversation" }));
    await waitFor(() => expect(window.location.pathname).toBe("/"));
    expect((screen.getByLabelText("Expert") as HTMLSelectElement).value).toBe("auto");
  });

  it("starts on auto when another conversation is opened", async () => {
    const { api } = fakeServer();
    render(<Routed api={api} />);
    await userEvent.selectOptions(screen.getByLabelText("Expert"), "code");
    act(() => navigate("/c/c1"));
    await waitFor(() => expect((screen.getByLabelText("Expert") as HTMLSelectElement).value).toBe("auto"));
  });
});

describe("the landing page", () => {
  it("selects an expert for the next question when its badge is clicked, and back to auto on a second click", async () => {
    const { api, asked } = fakeServer();
    render(<Routed api={api} />);
    const legal = screen.getByRole("button", { name: "Ask the legal expert" });
    expect(legal.getAttribute("aria-pressed")).toBe("false");
    await userEvent.click(legal);
    expect(legal.getAttribute("aria-pressed")).toBe("true");
    expect((screen.getByLabelText("Expert") as HTMLSelectElement).value).toBe("legal");
    await userEvent.click(legal);
    expect((screen.getByLabelText("Expert") as HTMLSelectElement).value).toBe("auto");
    await userEvent.click(screen.getByRole("button", { name: "Ask the support expert" }));
    await userEvent.type(screen.getByLabelText("Your question"), "hello{Enter}");
    await waitFor(() => expect(asked.map((b) => b.model)).toEqual(["support"]));
  });

  it("fills the composer with an example question, two per expert", async () => {
    const { api, asked } = fakeServer();
    render(<Routed api={api} />);
    for (const expert of ["code", "legal", "support", "general"]) {
      const card = screen.getByRole("button", { name: `Ask the ${expert} expert` }).closest("li")!;
      expect(card.querySelectorAll("button.example")).toHaveLength(2);
    }
    await userEvent.click(screen.getByRole("button", { name: "What is the liability cap in our MSA?" }));
    const box = screen.getByLabelText("Your question") as HTMLTextAreaElement;
    expect(box.value).toBe("What is the liability cap in our MSA?");
    expect(document.activeElement).toBe(box);
    // Filled, not sent: the question goes when the user sends it, routed.
    expect(asked).toEqual([]);
    await userEvent.keyboard("{Enter}");
    await waitFor(() => expect(asked).toHaveLength(1));
    expect(asked[0]).toMatchObject({ model: "auto" });
    expect(box.value).toBe("");
  });
});

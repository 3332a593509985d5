import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { Review } from "../api/types";
import { parsePath, usePath } from "../location";
import { ConsolePage, visibleTabs } from "./ConsolePage";
import { waited } from "./Reviews";

const DRAFT = "The liability cap is 36 months of fees [1].";

function review(id: string, over: Partial<Review> = {}): Review {
  return {
    id,
    request_id: `req-${id}`,
    conversation_id: `conv-${id}`,
    message_id: 2,
    expert: "legal",
    trigger: "always",
    delivery: "hold",
    channel: "web",
    question: `What is the liability cap? (${id})`,
    draft: DRAFT,
    grounding: {
      score: 0,
      checked: 1,
      action: "flag",
      unsupported: [{ start: 21, end: 30, text: "36 months", reason: "number_mismatch", detail: "the passage says 24 months" }],
    },
    citations: [
      { number: 1, title: "Master services agreement", source: "msa.md", snippet: "Liability is capped at 24 months of fees.", score: 0.8 },
    ],
    status: "pending",
    created_at: new Date(Date.now() - 5 * 60_000).toISOString(),
    ...over,
  };
}

type Reply = { status: number; body: unknown };

/** An Api over a fetch that answers "METHOD /path" from `routes` (a function: per call). */
function fakeApi(routes: Record<string, Reply | (() => Reply)>) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const path = new URL(request.url).pathname;
    const text = request.method === "GET" ? "" : await request.text();
    calls.push({ method: request.method, path, body: text ? JSON.parse(text) : null });
    const route = routes[`${request.method} ${path}`];
    const reply = typeof route === "function" ? route() : (route ?? { status: 404, body: { detail: "Not Found" } });
    return new Response(JSON.stringify(reply.body), { status: reply.status, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { api: new Api({ key: "eg-test", baseUrl: "http://t", fetch: fetchFn }), calls };
}

function Console({ api, roles }: { api: Api; roles: string[] | null }) {
  const view = parsePath(usePath());
  if (view.page !== "console") return null;
  return <ConsolePage api={api} models={[]} tab={view.tab} detail={view.detail} roles={roles} />;
}

/** A queue whose GET answers with what is still pending after the POSTs so far. */
function queueOf(...reviews: Review[]) {
  let pending = reviews;
  return {
    list: () => ({ status: 200, body: { data: pending } }),
    decide: (id: string, reply: Reply) => () => {
      if (reply.status === 200) pending = pending.filter((r) => r.id !== id);
      return reply;
    },
  };
}

const posts = (calls: { method: string; path: string; body: unknown }[]) => calls.filter((c) => c.method === "POST");

beforeEach(() => {
  window.history.pushState(null, "", "/console/reviews");
});

describe("the Reviews tab", () => {
  it("is shown to admins and reviewers; a reviewer sees only it", () => {
    expect(visibleTabs(["reviewer"]).map((t) => t.id)).toEqual(["reviews"]);
    expect(visibleTabs(["auditor"]).map((t) => t.id)).not.toContain("reviews");
    expect(visibleTabs(["admin"]).map((t) => t.id)).toContain("reviews");
    expect(visibleTabs(["user"])).toEqual([]);
    expect(visibleTabs(null).map((t) => t.id)).toContain("reviews");
  });

  it("opens at /console for a reviewer, whose default tab (audit) they cannot see", async () => {
    window.history.pushState(null, "", "/console");
    const { api } = fakeApi({ "GET /api/v1/reviews": { status: 200, body: { data: [] } } });
    render(<Console api={api} roles={["reviewer"]} />);
    expect(await screen.findByText("No answers are waiting for review.")).toBeTruthy();
    const tabs = within(screen.getByRole("navigation", { name: "Console sections" })).getAllByRole("link");
    expect(tabs.map((t) => t.textContent)).toEqual(["Reviews"]);
  });

  it("lists pending reviews in the API's order with expert, age and question", async () => {
    const older = review("r1", { created_at: new Date(Date.now() - 3 * 3600_000).toISOString() });
    const newer = review("r2", { expert: "code", question: "Why does the build fail?" });
    const { api, calls } = fakeApi({ "GET /api/v1/reviews": { status: 200, body: { data: [older, newer] } } });
    render(<Console api={api} roles={["admin"]} />);
    const table = await screen.findByRole("table", { name: "Pending reviews" });
    await within(table).findByText("Why does the build fail?");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.textContent)).toEqual([
      "legal3 hWhat is the liability cap? (r1)",
      "code5 minWhy does the build fail?",
    ]);
    expect(calls[0]).toMatchObject({ method: "GET", path: "/api/v1/reviews" });
  });

  it("shows the question, the draft with its grounding marks and the cited passages", async () => {
    const { api } = fakeApi({ "GET /api/v1/reviews": { status: 200, body: { data: [review("r1")] } } });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    expect(window.location.pathname).toBe("/console/reviews/r1");
    const draft = screen.getByTestId("review-draft");
    expect(Array.from(draft.querySelectorAll("mark")).map((m) => m.textContent)).toEqual(["36 months"]);
    expect(within(draft).getByTestId("grounding").textContent).toMatch(/not supported/);
    await userEvent.click(within(draft).getByRole("button", { name: "Master services agreement" }));
    expect(within(screen.getByRole("dialog")).getByText("Liability is capped at 24 months of fees.")).toBeTruthy();
  });

  it("approves with a reason; the review leaves the queue", async () => {
    const q = queueOf(review("r1"), review("r2"));
    const { api, calls } = fakeApi({
      "GET /api/v1/reviews": q.list,
      "POST /api/v1/reviews/r1": q.decide("r1", { status: 200, body: { ...review("r1"), status: "approved" } }),
    });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.type(screen.getByLabelText("Reason (required)"), "matches the contract");
    await userEvent.click(screen.getByRole("button", { name: "Approve answer" }));
    expect(await screen.findByText(/Approved: the asker now sees the draft/)).toBeTruthy();
    expect(posts(calls)).toEqual([
      { method: "POST", path: "/api/v1/reviews/r1", body: { decision: "approve", reason: "matches the contract" } },
    ]);
    await waitFor(() => expect(screen.queryByRole("link", { name: "What is the liability cap? (r1)" })).toBeNull());
    expect(screen.getByRole("link", { name: "What is the liability cap? (r2)" })).toBeTruthy();
    expect(window.location.pathname).toBe("/console/reviews");
  });

  it("edits: the text starts as the draft and the edited text is sent", async () => {
    const q = queueOf(review("r1"));
    const { api, calls } = fakeApi({
      "GET /api/v1/reviews": q.list,
      "POST /api/v1/reviews/r1": q.decide("r1", { status: 200, body: { ...review("r1"), status: "edited" } }),
    });
    render(<Console api={api} roles={["admin"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.click(screen.getByRole("radio", { name: "Edit" }));
    const text = screen.getByLabelText("Edited answer") as HTMLTextAreaElement;
    expect(text.value).toBe(DRAFT);
    await userEvent.clear(text);
    await userEvent.type(text, "The cap is 24 months of fees [[1].");
    await userEvent.type(screen.getByLabelText("Reason (required)"), "wrong number");
    await userEvent.click(screen.getByRole("button", { name: "Send edited answer" }));
    expect(await screen.findByText(/Edited: the asker now sees your text/)).toBeTruthy();
    expect(posts(calls)[0]!.body).toEqual({ decision: "edit", text: "The cap is 24 months of fees [1].", reason: "wrong number" });
    expect(await screen.findByText("No answers are waiting for review.")).toBeTruthy();
  });

  it("rejects with a reason", async () => {
    const q = queueOf(review("r1"));
    const { api, calls } = fakeApi({
      "GET /api/v1/reviews": q.list,
      "POST /api/v1/reviews/r1": q.decide("r1", { status: 200, body: { ...review("r1"), status: "rejected" } }),
    });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.click(screen.getByRole("radio", { name: "Reject" }));
    expect(screen.queryByLabelText("Edited answer")).toBeNull();
    await userEvent.type(screen.getByLabelText("Reason (required)"), "not legal advice we give");
    await userEvent.click(screen.getByRole("button", { name: "Reject answer" }));
    expect(await screen.findByText(/Rejected: the asker is told why/)).toBeTruthy();
    expect(posts(calls)[0]!.body).toEqual({ decision: "reject", reason: "not legal advice we give" });
  });

  it("requires a reason (and a changed text to edit) before sending anything", async () => {
    const { api, calls } = fakeApi({ "GET /api/v1/reviews": { status: 200, body: { data: [review("r1")] } } });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.type(screen.getByLabelText("Reason (required)"), "   ");
    await userEvent.click(screen.getByRole("button", { name: "Approve answer" }));
    const reason = screen.getByLabelText("Reason (required)");
    expect(reason.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText("Give a reason: it is recorded in the audit log.")).toBeTruthy();
    expect(document.activeElement).toBe(reason);

    await userEvent.click(screen.getByRole("radio", { name: "Edit" }));
    await userEvent.type(reason, "fix");
    await userEvent.click(screen.getByRole("button", { name: "Send edited answer" }));
    expect(screen.getByText(/The text is the same as the draft/)).toBeTruthy();
    expect(posts(calls)).toEqual([]);
  });

  it("says so when someone else decided first (409), and refreshes the queue", async () => {
    let lists = 0;
    const { api } = fakeApi({
      "GET /api/v1/reviews": () => ({ status: 200, body: { data: lists++ === 0 ? [review("r1")] : [] } }),
      "POST /api/v1/reviews/r1": {
        status: 409,
        body: { error: { message: "review 'r1' was already decided", code: "review_decided", param: "review_id" } },
      },
    });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.type(screen.getByLabelText("Reason (required)"), "ok");
    await userEvent.click(screen.getByRole("button", { name: "Approve answer" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toMatch(/Someone else decided this review/);
    expect(lists).toBe(2);
    expect(screen.queryByTestId("review-draft")).toBeNull();
    expect(await screen.findByText("No answers are waiting for review.")).toBeTruthy();
  });

  it("says so when the reviewer may not review this expert (403)", async () => {
    const { api } = fakeApi({
      "GET /api/v1/reviews": { status: 200, body: { data: [review("r1")] } },
      "POST /api/v1/reviews/r1": {
        status: 403,
        body: { error: { message: "you are not a reviewer of the 'legal' expert", code: "review_not_assigned" } },
      },
    });
    render(<Console api={api} roles={["reviewer"]} />);
    await userEvent.click(await screen.findByRole("link", { name: "What is the liability cap? (r1)" }));
    await userEvent.type(screen.getByLabelText("Reason (required)"), "ok");
    await userEvent.click(screen.getByRole("button", { name: "Approve answer" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/You are not a reviewer of the “legal” expert/);
    // The review stays open and in the queue.
    expect(screen.getByTestId("review-draft")).toBeTruthy();
  });

  it("explains a queue the key may not read, and a failed load", async () => {
    const forbidden = fakeApi({
      "GET /api/v1/reviews": { status: 403, body: { error: { message: "needs reviewer", code: "reviewer_required" } } },
    });
    const { unmount } = render(<Console api={forbidden.api} roles={null} />);
    expect(await screen.findByText(/for reviewers and admins; your account has neither role/)).toBeTruthy();
    unmount();
    const broken = fakeApi({ "GET /api/v1/reviews": { status: 500, body: { detail: "boom" } } });
    render(<Console api={broken.api} roles={["admin"]} />);
    expect((await screen.findByRole("alert")).textContent).toMatch(/Could not load the review queue/);
  });
});

describe("waited", () => {
  it("gives the largest whole unit", () => {
    const now = Date.parse("2026-11-23T12:00:00Z");
    expect(waited("2026-11-23T11:59:30Z", now)).toBe("just now");
    expect(waited("2026-11-23T11:15:00Z", now)).toBe("45 min");
    expect(waited("2026-11-23T07:00:00Z", now)).toBe("5 h");
    expect(waited("2026-11-20T12:00:00Z", now)).toBe("3 d");
  });
});

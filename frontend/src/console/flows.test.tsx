// The console flows of issue 26: confirmations before routing changes, rollback only when
// there is something to go back to, the feedback tab, a cleared quota, the phone trace.
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";

import { Api } from "../api/client";
import type { AuditEventDetail, FeedbackEntry, ModelCard, QuotaPolicy, RouterStatus } from "../api/types";
import { AuditLog } from "./AuditLog";
import { ConsolePage, visibleTabs } from "./ConsolePage";
import { Feedback, traceOf } from "./Feedback";
import { RouterAdmin, describeChange, rollbackTarget } from "./RouterAdmin";
import { Users, afterClearing, limitCell } from "./Users";

type Handler = (request: Request) => unknown;

function fakeApi(routes: Record<string, unknown | Handler>) {
  const calls: Request[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    calls.push(request.clone());
    const path = new URL(request.url).pathname;
    const route = routes[`${request.method} ${path}`];
    const body = typeof route === "function" ? (route as Handler)(request) : route;
    if (body === undefined) return new Response(JSON.stringify({ detail: "Not Found" }), { status: 404 });
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { api: new Api({ key: "eg-test", baseUrl: "http://t", fetch: fetchFn }), calls };
}

const version = (v: string, active: boolean, shadow = false) => ({
  version: v, created_at: "2026-11-20T10:00:00Z", experts: ["code", "legal"], architecture: "minilm-knn",
  data_hash: "d", metrics: { accuracy: 0.9 }, active, shadow,
});  // prettier-ignore

const oneVersion: RouterStatus = {
  serving: "gate-a", active: "gate-a", shadow: null, shadow_compared: 0, shadow_agreement: null,
  rollback_to: null, versions: [version("gate-a", true)],
};  // prettier-ignore
const twoVersions: RouterStatus = {
  ...oneVersion, rollback_to: "gate-0", versions: [version("gate-0", false), version("gate-a", true)],
};  // prettier-ignore

const models: ModelCard[] = ["auto", "code", "legal"].map((id) => ({ id, object: "model", created: 0, owned_by: "x", description: "" }));

describe("RouterAdmin", () => {
  it("disables Roll back when no version was promoted before the current one, and says why", async () => {
    const { api } = fakeApi({ "GET /api/v1/admin/router": oneVersion, "GET /api/v1/admin/router/feedback": [] });
    render(<RouterAdmin api={api} models={models} />);
    const rollback = await screen.findByRole("button", { name: "Roll back" });
    expect((rollback as HTMLButtonElement).disabled).toBe(true);
    expect(rollback.getAttribute("title")).toMatch(/no version was promoted before the current one/);
    expect(rollback.getAttribute("aria-describedby")).toBeTruthy();
    expect(document.getElementById(rollback.getAttribute("aria-describedby")!)!.textContent).toMatch(/nothing to go back to/);
  });

  it("promotes only after the confirmation that says what changes; Escape cancels", async () => {
    const promoted: string[] = [];
    const { api } = fakeApi({
      "GET /api/v1/admin/router": twoVersions,
      "GET /api/v1/admin/router/feedback": [],
      "POST /api/v1/admin/router/promote": (r: Request) => {
        promoted.push(r.url);
        return twoVersions;
      },
    });
    render(<RouterAdmin api={api} models={models} />);
    const promote = await screen.findByRole("button", { name: "Promote" });
    await userEvent.click(promote);
    let dialog = screen.getByRole("dialog", { name: "Promote gate-0?" });
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(within(dialog).getByText(/Every request from every user and channel .* routed by gate-0 instead of gate-a/)).toBeTruthy();
    // Cancel has the focus: Enter alone never confirms. Escape closes, nothing is sent.
    expect(document.activeElement).toBe(within(dialog).getByRole("button", { name: "Cancel" }));
    fireEvent.keyDown(dialog, { key: "Escape" });
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(promoted).toEqual([]);
    expect(document.activeElement).toBe(promote);

    await userEvent.click(promote);
    dialog = screen.getByRole("dialog", { name: "Promote gate-0?" });
    await userEvent.click(within(dialog).getByRole("button", { name: "Promote gate-0" }));
    expect(await screen.findByText("Promoted gate-0.")).toBeTruthy();
    expect(promoted).toHaveLength(1);
  });

  it("keeps Tab inside the dialog", async () => {
    const { api } = fakeApi({ "GET /api/v1/admin/router": twoVersions, "GET /api/v1/admin/router/feedback": [] });
    render(<RouterAdmin api={api} models={models} />);
    await userEvent.click(await screen.findByRole("button", { name: "Roll back" }));
    const dialog = screen.getByRole("dialog", { name: "Roll back the router?" });
    const [cancel, confirm] = within(dialog).getAllByRole("button");
    expect(confirm!.textContent).toBe("Roll back to gate-0");
    await userEvent.tab();
    expect(document.activeElement).toBe(confirm);
    await userEvent.tab();
    expect(document.activeElement).toBe(cancel);
    await userEvent.tab({ shift: true });
    expect(document.activeElement).toBe(confirm);
  });

  it("describes shadow and train-and-promote as the company-wide changes they are", () => {
    expect(describeChange({ kind: "shadow", version: "gate-0" }, { ...twoVersions, shadow: "gate-x" }).body).toMatch(
      /also route every request.*Answers still follow gate-a\. It replaces the current shadow, gate-x\./,
    );
    expect(describeChange({ kind: "train-promote" }, twoVersions).body).toMatch(/replaces gate-a for every request/);
    // A server without rollback_to: two versions may have something to go back to.
    const { rollback_to: _, ...older } = twoVersions;
    expect(rollbackTarget(older as RouterStatus)).toBe("the previously promoted version");
    expect(rollbackTarget(oneVersion)).toBeNull();
  });
});

const quota = (subject: string, rpm: number | null, day: number | null = null): QuotaPolicy => {
  const [scope, name] = subject === "global" ? ["global", "*"] : subject.split(":");
  return { scope: scope!, name: name!, subject, rpm, tokens_per_day: day, tokens_per_month: null, on_limit: "reject" };
};
const ana = { id: 7, email: "ana@example.com", team: "eng", roles: ["user"], groups: [], disabled: false, active_keys: 1, created_at: "2026-11-20T00:00:00Z" };

describe("quotas", () => {
  it("shows what still applies in place of a limit a policy does not set", () => {
    const quotas = [quota("user:ana@example.com", 50), quota("team:eng", 100, 5000), quota("global", null, 100000)];
    expect(limitCell(quotas[0]!, "rpm", quotas, [ana])).toBe("50");
    expect(limitCell(quotas[0]!, "tokens_per_day", quotas, [ana])).toBe("none of its own; team:eng 5,000, global 100,000 applies");
    expect(limitCell(quotas[1]!, "tokens_per_month", quotas, [ana])).toBe("no limit");
    expect(afterClearing(quotas[1]!, quotas, [ana])).toBe("Cleared the limits of team:eng: the limits of global still apply to it.");
    expect(afterClearing(quotas[2]!, quotas, [ana])).toBe("Cleared the limits of global: it has no quota now.");
  });

  it("Clear removes the row instead of leaving dashes, and says what applies now", async () => {
    let quotas = [quota("user:ana@example.com", 50), quota("global", 600)];
    const { api } = fakeApi({
      "GET /api/v1/admin/users": [ana],
      "GET /api/v1/admin/teams": [],
      "GET /api/v1/admin/quotas": () => quotas,
      "PUT /api/v1/admin/quotas": () => {
        quotas = [quota("user:ana@example.com", null), quota("global", 600)];
        return quotas[0];
      },
    });
    render(<Users api={api} />);
    const table = await screen.findByRole("table", { name: "Quota policies" });
    await screen.findByRole("row", { name: /user:ana@example\.com 50/ });
    await userEvent.click(screen.getByRole("button", { name: "Clear the quota of user:ana@example.com" }));
    expect((await screen.findByRole("status")).textContent).toBe(
      "Cleared the limits of user:ana@example.com: the limits of global still apply to it.",
    );
    expect(within(table).queryByText("user:ana@example.com")).toBeNull();
    expect(within(table).queryByText("–")).toBeNull();
    expect(within(table).getByRole("row", { name: /global 600 no limit no limit reject/ })).toBeTruthy();
  });
});

const entry = (over: Partial<FeedbackEntry>): FeedbackEntry => ({
  id: 1, request_id: "req-1", rating: "down", comment: null, routed_expert: "support", expected_expert: null,
  resolved: false, created_at: "2026-11-23T10:00:00Z", user_email: "ana@example.com", question: "why?", ...over,
});  // prettier-ignore

describe("Feedback", () => {
  it("lists ratings and comments and opens the answer's audit trace", async () => {
    const data = [
      entry({ id: 2, request_id: "req-2", rating: "up", comment: "clear steps, thanks", routed_expert: "code" }),
      entry({ id: 1, comment: "this is a legal question", expected_expert: "legal", resolved: true, question: null }),
    ];
    const { api, calls } = fakeApi({
      "GET /api/v1/admin/feedback": { data, next_cursor: null },
      "GET /api/v1/admin/audit": {
        data: [
          { seq: 9, action: "feedback.submitted", request_id: "req-1" },
          { seq: 4, action: "chat.completion", request_id: "req-1" },
        ],
        next_cursor: null,
      },
    });
    render(<Feedback api={api} models={models} />);
    const list = await screen.findByRole("list", { name: "Feedback" });
    const items = await within(list).findAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(within(items[0]!).getByText("clear steps, thanks")).toBeTruthy();
    expect(items[1]!.textContent).toMatch(/this is a legal question.*support · user says: legal.*deleted with its conversation.*a training example/);

    await userEvent.selectOptions(screen.getByLabelText("Rating"), "down");
    await userEvent.click(screen.getByLabelText("with a comment only"));
    const last = calls.filter((c) => new URL(c.url).pathname === "/api/v1/admin/feedback").at(-1)!;
    expect(Object.fromEntries(new URL(last.url).searchParams)).toEqual({ rating: "down", with_comment: "true", limit: "50" });

    await userEvent.click(within(items[1]!).getByRole("button", { name: "Audit trace of this answer" }));
    await vi.waitFor(() => expect(window.location.pathname).toBe("/console/audit/4"));
  });

  it("loads older feedback with the cursor, and starts over when a filter changes", async () => {
    const { api, calls } = fakeApi({
      "GET /api/v1/admin/feedback": (request: Request) =>
        new URL(request.url).searchParams.get("cursor") === "older"
          ? { data: [entry({ id: 1, comment: "second page" })], next_cursor: null }
          : { data: [entry({ id: 2, request_id: "req-2", comment: "first page" })], next_cursor: "older" },
    });
    render(<Feedback api={api} models={models} />);
    const list = await screen.findByRole("list", { name: "Feedback" });
    await within(list).findByText("first page");
    await userEvent.click(screen.getByRole("button", { name: "Load older feedback" }));
    await within(list).findByText("second page");
    expect(within(list).getAllByRole("listitem").map((li) => li.getAttribute("data-request-id"))).toEqual(["req-2", "req-1"]);
    expect(screen.queryByRole("button", { name: "Load older feedback" })).toBeNull();
    const feedbackCalls = () => calls.filter((c) => new URL(c.url).pathname === "/api/v1/admin/feedback");
    expect(new URL(feedbackCalls().at(-1)!.url).searchParams.get("cursor")).toBe("older");

    await userEvent.selectOptions(screen.getByLabelText("Rating"), "down");
    await vi.waitFor(() => expect(within(list).getAllByRole("listitem")).toHaveLength(1));
    const params = new URL(feedbackCalls().at(-1)!.url).searchParams;
    expect(params.get("rating")).toBe("down");
    expect(params.has("cursor")).toBe(false);
  });

    it("picks the request's own event, not the feedback's", () => {
    const ev = (seq: number, action: string) => ({ seq, action }) as never;
    expect(traceOf([ev(9, "feedback.submitted"), ev(4, "chat.completion")])?.seq).toBe(4);
    expect(traceOf([])).toBeNull();
  });

  it("is a console tab for admins and auditors", () => {
    expect(visibleTabs(["auditor"]).map((t) => t.id)).toContain("feedback");
    expect(visibleTabs(["reviewer"]).map((t) => t.id)).not.toContain("feedback");
  });
});

const traceEvent = {
  seq: 12, ts: "2026-11-23T10:00:00Z", request_id: "req-12", action: "chat.completion", outcome: "ok", status: 200,
  user_id: 1, user_email: "ana@example.com", team: null, channel: "web", expert: "code", reason: "routed",
  payload: {}, prompt: "q", answer: "a", content_digest: "d", content_purged_at: null, alg: "sha256", prev_hash: "p",
  hash: "h", integrity: { hash_ok: true, content_ok: true, links_to_previous: true, problem: null },
} as AuditEventDetail;  // prettier-ignore

function phoneWidth(narrow: boolean) {
  vi.stubGlobal("matchMedia", (query: string) => ({
    matches: narrow,
    media: query,
    addEventListener: () => {},
    removeEventListener: () => {},
  }));
}

describe("AuditLog", () => {
  afterEach(() => vi.unstubAllGlobals());
  const routes = {
    "GET /api/v1/admin/audit": { data: [traceEvent], next_cursor: null },
    "GET /api/v1/admin/audit/12": traceEvent,
  };

  it("opens the trace as a dialog over the table at phone width; Escape closes it", async () => {
    phoneWidth(true);
    window.history.pushState(null, "", "/console/audit/12");
    const { api } = fakeApi(routes);
    render(<AuditLog api={api} models={models} detail="12" />);
    const dialog = await screen.findByRole("dialog", { name: /Event 12/ }, { timeout: 5000 });
    expect(within(dialog).getByTestId("audit-trace")).toBeTruthy();
    // The modal moves focus in an effect, which may run after the dialog is first found.
    await waitFor(() => expect(document.activeElement).toBe(within(dialog).getByRole("button", { name: "Close" })));
    act(() => {
      fireEvent.keyDown(dialog, { key: "Escape" });
    });
    expect(window.location.pathname).toBe("/console/audit");
  });

  it("keeps the trace beside the table on a wide screen", async () => {
    phoneWidth(false);
    const { api } = fakeApi(routes);
    render(<AuditLog api={api} models={models} detail="12" />);
    expect(await screen.findByTestId("audit-trace", {}, { timeout: 5000 })).toBeTruthy();
    expect(screen.queryByRole("dialog")).toBeNull();
  });
});

describe("ConsolePage", () => {
  it("lists the Feedback tab among the sections", () => {
    const { api } = fakeApi({});
    render(<ConsolePage api={api} models={models} tab="experts" detail={null} roles={["admin"]} />);
    const nav = screen.getByRole("navigation", { name: "Console sections" });
    expect(within(nav).getByRole("link", { name: "Feedback" }).getAttribute("href")).toBe("/console/feedback");
  });
});

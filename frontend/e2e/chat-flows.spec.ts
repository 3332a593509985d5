// The chat's flows (issue 26) in Chromium, desktop and phone: regenerate, ask another
// expert, edit and resend, search and rename, cited sentences and the whole document,
// the quota meter, the expert and model under each answer. A user of its own (so the
// admin's history in chat.spec.ts is not touched) and a document only its group may read.
import { expect, test, type APIRequestContext, type Locator, type Page } from "@playwright/test";

import { env, expectAccessible, shot } from "./helpers";

test.describe.configure({ mode: "serial" });

const GROUP = "flows-team";
const QUESTION = "what is the liability cap in our MSA contract";
// A long title, so that a source's title wraps at phone width.
const DOCUMENT = `# Harborlight master services agreement for enterprise customers and resellers

## Section 9. Limitation of liability and the exclusions from the cap

Each party's total liability under this agreement is capped at the fees paid in the
twelve months before the claim. The cap does not apply to breaches of confidentiality.

## Section 10. Indemnities

Each party indemnifies the other against third-party claims of infringement.
`;

let page: Page;
let userKey = "";
let outsiderKey = "";
let documentId = 0;

function admin(request: APIRequestContext, path: string, init: { method?: string; data?: unknown; multipart?: Record<string, unknown> } = {}) {
  return request.fetch(`${env("EXPERTGATE_E2E_URL")}${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${env("EXPERTGATE_E2E_KEY")}` },
    data: init.data,
    multipart: init.multipart as never,
  });
}

async function issueKey(request: APIRequestContext, email: string, groups: string[]): Promise<string> {
  const r = await admin(request, "/api/v1/admin/keys", { method: "POST", data: { email, groups } });
  expect(r.status(), await r.text()).toBe(201);
  return ((await r.json()) as { secret: string }).secret;
}

test.beforeAll(async ({ browser, request }) => {
  userKey = await issueKey(request, "flo@example.com", [GROUP]);
  outsiderKey = await issueKey(request, "otto@example.com", []);
  const upload = await admin(request, "/api/v1/documents", {
    method: "POST",
    multipart: {
      domain: "legal",
      groups: GROUP,
      files: { name: "harborlight-msa.md", mimeType: "text/markdown", buffer: Buffer.from(DOCUMENT) },
    },
  });
  expect(upload.status(), await upload.text()).toBe(202);
  const jobId = ((await upload.json()) as { id: string }).id;
  await expect
    .poll(async () => ((await (await admin(request, `/api/v1/ingest-jobs/${jobId}`)).json()) as { status: string }).status, { timeout: 30_000 })
    .toBe("succeeded");
  const job = (await (await admin(request, `/api/v1/ingest-jobs/${jobId}`)).json()) as { results: { document_id: number }[] };
  documentId = job.results[0]!.document_id;
  // Limits for this user, for the quota meter.
  const quota = await admin(request, "/api/v1/admin/quotas", {
    method: "PUT",
    data: { scope: "user", name: "flo@example.com", rpm: 40, tokens_per_day: 300000 },
  });
  expect(quota.ok(), await quota.text()).toBe(true);
  page = await browser.newPage({ baseURL: env("EXPERTGATE_E2E_URL") });
});

test.afterAll(async () => {
  await page.close();
});

async function ask(text: string): Promise<string> {
  const box = page.getByLabel("Your question");
  await box.fill(text);
  const response = page.waitForResponse((r) => r.url().endsWith("/v1/chat/completions"));
  await box.press("Enter");
  const requestId = (await response).headers()["x-request-id"] ?? "";
  await expect(page.getByTestId("answer").last()).toHaveAttribute("data-status", "done");
  return requestId;
}

function conversationId(): string {
  const m = /\/c\/([0-9a-f-]{36})$/.exec(page.url());
  expect(m, `a conversation address, not ${page.url()}`).not.toBeNull();
  return m![1]!;
}

async function storedMessages(): Promise<{ role: string; content: string; request_id: string }[]> {
  const r = await page.request.get(`/api/v1/conversations/${conversationId()}`, { headers: { authorization: `Bearer ${userKey}` } });
  expect(r.status()).toBe(200);
  return ((await r.json()) as { messages: { role: string; content: string; request_id: string }[] }).messages;
}

function box(l: Locator) {
  return l.boundingBox().then((b) => {
    expect(b).not.toBeNull();
    return b!;
  });
}

test("sign in as a user with the document's group", async () => {
  await page.goto("/");
  await page.getByLabel("API key").fill(userKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Ask the experts" })).toBeVisible();
});

test("the expert and the model are named under each answer; the quota meter shows one number per limit", async () => {
  await ask(QUESTION);
  const answer = page.getByTestId("answer").last();
  await expect(answer.getByTestId("expert-badge")).toHaveAttribute("data-expert", "legal");
  await expect(answer.getByTestId("answer-model")).toHaveText(/^legal expert · model \S+/);
  const rows = page.getByTestId("quota-left");
  await expect(rows).toHaveCount(2);
  for (const row of await rows.all()) {
    // One number on each line, and what it counts.
    const text = (await row.textContent()) ?? "";
    expect(text.match(/\d[\d,]*/g), text).toHaveLength(1);
    expect(text).toMatch(/^\d[\d,]* (requests left this minute|tokens left today)$/);
  }
  await expect(page.getByTestId("ratelimit-headers")).toHaveCount(0);
  await expect(page.getByRole("meter", { name: "Requests this minute left (your limit)" })).toBeVisible();
});

test("regenerate: the last answer is replaced, not duplicated, and stays replaced on reload", async () => {
  const before = await storedMessages();
  expect(before.map((m) => m.role)).toEqual(["user", "assistant"]);
  const oldId = before[1]!.request_id;
  const answer = page.getByTestId("answer").last();
  const chat = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  const dropped = page.waitForResponse((r) => r.url().endsWith("/drop-exchanges"));
  await answer.getByRole("button", { name: "Regenerate" }).click();
  // Asked afresh: a cached copy of the same answer would not be a new one.
  expect((await chat).headers()["cache-control"]).toBe("no-cache");
  const drop = await dropped;
  expect(drop.status()).toBe(200);
  expect(drop.request().postDataJSON()).toEqual({ request_ids: [oldId] });
  await expect(page.getByTestId("answer")).toHaveCount(1);
  await expect(page.getByTestId("answer")).toHaveAttribute("data-status", "done");
  const after = await storedMessages();
  expect(after.map((m) => m.role)).toEqual(["user", "assistant"]);
  expect(after[1]!.request_id).not.toBe(oldId);
  await page.reload();
  await expect(page.getByTestId("answer")).toHaveCount(1);
  await expect(page.getByTestId("question")).toHaveCount(1);
  await expectAccessible(page, "chat after regenerate");
  await shot(page, "chat-regenerate");
});

test("ask another expert: both answers side by side, the preference becomes routing feedback", async ({ request }) => {
  const original = (await storedMessages())[1]!.request_id;
  const answer = page.getByTestId("answer").last();
  await answer.getByLabel("Ask another expert").selectOption("support");
  await answer.getByRole("button", { name: "Compare" }).click();
  const compare = page.getByTestId("compare");
  await expect(compare).toBeVisible();
  const left = compare.getByTestId("compare-original");
  const right = compare.getByTestId("compare-other");
  await expect(right.getByTestId("answer")).toHaveAttribute("data-status", "done");
  await expect(left.getByTestId("expert-badge")).toHaveAttribute("data-expert", "legal");
  await expect(right.getByTestId("expert-badge")).toHaveAttribute("data-expert", "support");
  await expect(right.getByTestId("expert-badge")).toContainText("chosen by hand");
  // Side by side at desktop width.
  const [a, b] = [await box(left), await box(right)];
  expect(b.x).toBeGreaterThan(a.x + a.width - 1);
  expect(Math.abs(a.y - b.y)).toBeLessThan(4);
  // Nothing new is asked until one of the two is kept.
  await expect(page.getByText("Keep one of the two answers above to go on.")).toBeVisible();
  await page.getByLabel("Your question").fill("a next question");
  await expect(page.getByRole("button", { name: "Send" })).toBeDisabled();
  await page.getByLabel("Your question").fill("");
  await expectAccessible(page, "two experts' answers compared");
  await shot(page, "chat-compare");
  // Left open, the comparison survives a reload (both answers are stored until one is kept).
  await page.reload();
  await expect(compare.getByTestId("compare-other").getByTestId("expert-badge")).toHaveAttribute("data-expert", "support");
  await expect(compare.getByTestId("compare-original").getByTestId("expert-badge")).toHaveAttribute("data-expert", "legal");

  const feedback = page.waitForResponse((r) => r.url().endsWith("/api/v1/feedback"));
  const dropped = page.waitForResponse((r) => r.url().endsWith("/drop-exchanges"));
  await compare.getByRole("button", { name: "Keep the support answer" }).click();
  const sent = await feedback;
  expect(sent.status()).toBe(201);
  expect(sent.request().postDataJSON()).toMatchObject({ request_id: original, rating: "down", expected_expert: "support" });
  expect((await dropped).request().postDataJSON()).toEqual({ request_ids: [original] });
  await expect(page.getByRole("status").filter({ hasText: "Kept the support answer" })).toBeVisible();
  await expect(compare).toBeHidden();
  await expect(page.getByTestId("answer")).toHaveCount(1);
  await expect(page.getByTestId("answer").getByTestId("expert-badge")).toHaveAttribute("data-expert", "support");
  const stored = await storedMessages();
  expect(stored.map((m) => m.role)).toEqual(["user", "assistant"]);
  // The preference is in the routing feedback (an audited feedback.submitted event naming
  // the expert it should have gone to; FeedbackService turns it into a training example).
  await expect
    .poll(async () => {
      const r = await admin(request, `/api/v1/admin/audit?action=feedback.submitted&request_id=${original}`);
      const events = ((await r.json()) as { data: { payload: Record<string, unknown> }[] }).data;
      return events.map((e) => e.payload.expected_expert);
    })
    .toEqual(["support"]);
});

test("edit and resend: the conversation goes on from the edited question", async () => {
  await ask("and does the cap cover confidentiality breaches");
  await expect(page.getByTestId("question")).toHaveCount(2);
  await page.getByRole("button", { name: `Edit question: ${QUESTION}` }).click();
  const edit = page.getByLabel("Edited question");
  await expect(edit).toBeFocused();
  await edit.fill("what is the liability cap in the Harborlight MSA");
  await expectAccessible(page, "editing a question");
  const dropped = page.waitForResponse((r) => r.url().endsWith("/drop-exchanges"));
  await page.getByRole("form", { name: "Edit your question" }).getByRole("button", { name: "Send" }).click();
  expect((await dropped).status()).toBe(200);
  await expect(page.getByTestId("question")).toHaveCount(1);
  await expect(page.getByTestId("question")).toContainText("Harborlight MSA");
  const stored = await storedMessages();
  expect(stored.filter((m) => m.role === "user").map((m) => m.content)).toEqual(["what is the liability cap in the Harborlight MSA"]);
  await page.reload();
  await expect(page.getByTestId("question").locator("p")).toHaveText(["what is the liability cap in the Harborlight MSA"]);
});

test("citations: the marker lights its sentence, the passage says what it is cited for, the whole document opens", async () => {
  const answer = page.getByTestId("answer").last();
  const marker = answer.getByRole("button", { name: "Show source 1" }).first();
  await expect(marker).toBeVisible();
  // The marker and the sentence it closes are one span.
  const sentence = answer.locator(".cited-sentence", { has: page.getByRole("button", { name: "Show source 1" }) }).first();
  await expect(sentence).toHaveAttribute("data-cites", /\b1\b/);
  await marker.hover();
  await expect(sentence).not.toHaveCSS("background-color", "rgba(0, 0, 0, 0)");
  await marker.click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByTestId("cited-for")).toContainText("Our MSA caps liability at twelve months of fees.");
  // The grounding check's finding in that sentence ('MSA' is in no passage) is shown with it.
  await expect(dialog.getByTestId("cited-finding").first()).toContainText("MSA");
  await expectAccessible(page, "a citation with the sentence it is cited for");
  await expect(dialog).toContainText("harborlight-msa.md");
  await dialog.getByRole("button", { name: "Read the whole document" }).click();
  const doc = page.getByTestId("document");
  await expect(doc.getByRole("heading", { level: 2 })).toHaveText(/^Harborlight master services agreement/);
  await expect(doc.getByTestId("cited-section")).toBeVisible();
  await expect(doc).toContainText("Each party indemnifies the other");
  await expectAccessible(page, "the whole document from a citation");
  await shot(page, "chat-document");
  await page.keyboard.press("Escape");
  await expect(doc).toBeHidden();
  // The document is the user's group's only: someone outside it gets a 404, as for none.
  const url = `/api/v1/documents/${documentId}/text`;
  const outside = await page.request.get(url, { headers: { authorization: `Bearer ${outsiderKey}` } });
  expect(outside.status()).toBe(404);
  const inside = await page.request.get(url, { headers: { authorization: `Bearer ${userKey}` } });
  expect(inside.status()).toBe(200);
});

test("search and rename in the sidebar", async () => {
  // A second conversation, so that the search has something to leave out.
  await page.getByRole("button", { name: "+ New conversation" }).click();
  await ask("how do I squash the last three git commits");
  const nav = page.getByRole("navigation", { name: "Conversations" });
  await expect(nav.getByRole("listitem")).toHaveCount(2);
  const search = nav.getByLabel("Search conversations");
  const searched = page.waitForResponse((r) => r.url().includes("/api/v1/conversations?") && r.url().includes("q=rebase"));
  await search.fill("rebase");
  await searched;
  // Found in the answer's text (not the title), with the words around it.
  await expect(nav.getByRole("listitem")).toHaveCount(1);
  await expect(nav.getByTestId("search-match")).toContainText("rebase");
  await expectAccessible(page, "sidebar search");
  await shot(page, "chat-search");
  await search.fill("no conversation says this");
  await expect(nav.getByRole("status")).toHaveText("No conversation holds “no conversation says this”.");
  await search.fill("Harborlight");
  await expect(nav.getByRole("listitem")).toHaveCount(1);
  await nav.getByRole("button", { name: /^Rename conversation: / }).click();
  const title = nav.getByLabel("New title");
  await expect(title).toBeFocused();
  await title.fill("Harborlight MSA questions");
  await title.press("Enter");
  await expect(nav.getByRole("link", { name: /Harborlight MSA questions/ })).toBeVisible();
  await search.fill("MSA questions");
  await expect(nav.getByRole("listitem")).toHaveCount(1);
  await expectAccessible(page, "sidebar search by the new title");
  await shot(page, "chat-rename");
  await search.fill("");
  await expect(nav.getByRole("listitem")).toHaveCount(2);
});

test("phone: two answers stacked, source numbers beside their wrapped titles", async () => {
  const nav = page.getByRole("navigation", { name: "Conversations" });
  await nav.getByRole("link", { name: /Harborlight MSA questions/ }).click();
  await page.setViewportSize({ width: 390, height: 844 });
  const answer = page.getByTestId("answer").last();
  await expect(answer).toHaveAttribute("data-status", "done");
  // The source title wraps; its number stays on its first line.
  const item = answer.locator(".source-list li").first();
  const [num, title] = [await box(item.locator(".source-number")), await box(item.getByRole("button"))];
  expect(title.height).toBeGreaterThan(30);
  expect(Math.abs(num.y - title.y)).toBeLessThan(6);
  expect(num.x + num.width).toBeLessThanOrEqual(title.x + 1);
  await answer.locator(".source-list").scrollIntoViewIfNeeded();
  await expectAccessible(page, "sources at phone width");
  await shot(page, "chat-phone-sources");

  await answer.getByLabel("Ask another expert").selectOption("general");
  await answer.getByRole("button", { name: "Compare" }).click();
  const compare = page.getByTestId("compare");
  await expect(compare.getByTestId("compare-other").getByTestId("answer")).toHaveAttribute("data-status", "done");
  const [a, b] = [await box(compare.getByTestId("compare-original")), await box(compare.getByTestId("compare-other"))];
  expect(Math.abs(a.x - b.x)).toBeLessThan(2);
  expect(b.y).toBeGreaterThanOrEqual(a.y + a.height - 1);
  await compare.scrollIntoViewIfNeeded();
  await expectAccessible(page, "compared answers at phone width");
  await shot(page, "chat-phone-compare");
  const dropped = page.waitForResponse((r) => r.url().endsWith("/drop-exchanges"));
  await compare.getByRole("button", { name: "Keep the legal answer" }).click();
  expect((await dropped).status()).toBe(200);
  await expect(compare).toBeHidden();
  await expect(page.getByTestId("answer").last().getByTestId("expert-badge")).toHaveAttribute("data-expert", "legal");
  await page.setViewportSize({ width: 1280, height: 800 });
});

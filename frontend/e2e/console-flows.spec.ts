// Issue 26's console and sign-in flows, at desktop and at phone size, on the shared server
// (server.ts): the sign-in page for staff, a revoked key, the Feedback tab, the audit trace
// where the tap was, the tabs, confirmations before company-wide routing changes, and a
// cleared quota. Each flow is checked with axe; screenshots go where `make screenshots` says.
import { expect, request, test, type APIRequestContext, type Browser, type Page } from "@playwright/test";

import { env, expectAccessible, shot } from "./helpers";

test.describe.configure({ mode: "serial" });

const VIEWPORTS = [
  { name: "desktop", suffix: "", viewport: { width: 1280, height: 800 } },
  { name: "phone", suffix: "-phone", viewport: { width: 390, height: 844 } },
] as const;

const LIKED = { text: "how do I squash the last three git commits", model: "code", comment: "Worked first time, thanks." };
const WRONG = {
  text: "what is the liability cap in our MSA contract",
  model: "legal",
  comment: "The cap is in section 9 of the MSA, and it is twelve months of fees, not a fixed sum.",
};

let admin: APIRequestContext;
const requestIds: Record<string, string> = {};

async function askAs(api: APIRequestContext, text: string, model: string): Promise<string> {
  const r = await api.post("/v1/chat/completions", { data: { model, messages: [{ role: "user", content: text }] } });
  expect(r.status(), await r.text()).toBe(200);
  return ((await r.json()) as { expertgate: { request_id: string } }).expertgate.request_id;
}

async function createKey(email: string, role = "user"): Promise<{ id: number; secret: string }> {
  const r = await admin.post("/api/v1/admin/keys", { data: { email, role, name: "e2e console flows" } });
  expect(r.status(), await r.text()).toBe(201);
  const body = (await r.json()) as { key: { id: number }; secret: string };
  return { id: body.key.id, secret: body.secret };
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

async function openTab(page: Page, name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Console sections" }).getByRole("link", { name, exact: true }).click();
}

async function newPage(browser: Browser, viewport: { width: number; height: number }): Promise<Page> {
  const context = await browser.newContext({ baseURL: env("EXPERTGATE_E2E_URL"), viewport });
  return context.newPage();
}

test.beforeAll(async () => {
  admin = await request.newContext({
    baseURL: env("EXPERTGATE_E2E_URL"),
    extraHTTPHeaders: { authorization: `Bearer ${env("EXPERTGATE_E2E_KEY")}` },
  });
  // Two answers with feedback to read in the console: one liked, one wrong with a comment.
  requestIds.liked = await askAs(admin, LIKED.text, LIKED.model);
  requestIds.wrong = await askAs(admin, WRONG.text, WRONG.model);
  for (const [id, rating, comment, expected] of [
    [requestIds.liked, "up", LIKED.comment, null],
    [requestIds.wrong, "down", WRONG.comment, "support"],
  ] as const) {
    const r = await admin.post("/api/v1/feedback", { data: { request_id: id, rating, comment, expected_expert: expected } });
    expect(r.status(), await r.text()).toBe(201);
  }
});

test.afterAll(async () => {
  await admin.dispose();
});

for (const { name, suffix, viewport } of VIEWPORTS) {
  test.describe(name, () => {
    let page: Page;

    test.beforeAll(async ({ browser }) => {
      page = await newPage(browser, viewport);
    });

    test.afterAll(async () => {
      await page.context().close();
    });

    test("the sign-in page speaks to staff; the operator's hint waits behind 'Administrators'", async () => {
      await page.goto("/");
      await expect(page.getByText("Your administrator gives you a key")).toBeVisible();
      await expect(page.getByText("data/admin.key")).toBeHidden();
      await expectAccessible(page, `sign-in (${name})`);
      await shot(page, `signin${suffix}`);
      await page.getByText("Administrators", { exact: true }).click();
      await expect(page.getByText("data/admin.key")).toBeVisible();
    });

    test("a key revoked mid-session drops to sign-in, saying why", async () => {
      const key = await createKey(`revoked-${name}@example.com`);
      await signIn(page, key.secret);
      const box = page.getByLabel("Your question");
      await expect(box).toBeVisible();
      const revoked = await admin.post(`/api/v1/admin/keys/${key.id}/revoke`);
      expect(revoked.status()).toBe(200);
      // The question's request meets the revoked key, unless a request the page makes on
      // its own (the quota meter, the conversation list) meets it first and the box is gone.
      await box.fill("how do I reset my password", { timeout: 5000 }).catch(() => undefined);
      await box.press("Enter", { timeout: 5000 }).catch(() => undefined);
      const notice = page.getByTestId("signed-out-notice");
      await expect(notice).toContainText("You were signed out.");
      await expect(notice).toContainText("no longer accepted");
      await expect(page.getByLabel("API key")).toBeVisible();
      expect(await page.evaluate(() => localStorage.getItem("expertgate.apiKey"))).toBeNull();
      await expectAccessible(page, `sign-in after a revoked key (${name})`);
      await shot(page, `signin-revoked${suffix}`);
      // Signing in again clears the notice.
      await signIn(page, env("EXPERTGATE_E2E_KEY"));
      await expect(page.getByTestId("signed-out-notice")).toBeHidden();
    });

    test("the console tabs are all on screen, none cut off", async () => {
      await page.getByRole("link", { name: "Console" }).click();
      await expect(page.getByRole("heading", { name: "Console" })).toBeVisible();
      const links = page.getByRole("navigation", { name: "Console sections" }).getByRole("link");
      expect(await links.count()).toBeGreaterThanOrEqual(9);
      for (const link of await links.all()) {
        const box = (await link.boundingBox())!;
        expect(box.x, `${await link.textContent()} starts on screen`).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width, `${await link.textContent()} ends on screen`).toBeLessThanOrEqual(viewport.width);
      }
    });

    test("the Feedback tab shows ratings and comments and links to the trace", async () => {
      await openTab(page, "Feedback");
      const list = page.getByRole("list", { name: "Feedback" });
      const wrong = list.locator(`li[data-request-id="${requestIds.wrong}"]`);
      const liked = list.locator(`li[data-request-id="${requestIds.liked}"]`);
      await expect(wrong).toContainText(WRONG.comment);
      await expect(wrong).toContainText("user says: support");
      await expect(wrong).toContainText(WRONG.text);
      await expect(liked).toContainText(LIKED.comment);
      await expect(liked).toContainText("Thumbs up");
      await expect(wrong).toContainText("Thumbs down");
      await expectAccessible(page, `console feedback (${name})`);
      await shot(page, `console-feedback${suffix}`);
      await page.getByLabel("Rating").selectOption("down");
      await expect(liked).toBeHidden();
      await expect(wrong).toBeVisible();
      await page.getByLabel("Rating").selectOption("");

      await wrong.getByRole("button", { name: "Audit trace of this answer" }).click();
      await expect(page).toHaveURL(/\/console\/audit\/\d+$/);
      const trace = page.getByTestId("audit-trace");
      await expect(trace).toContainText(requestIds.wrong!);
      await expect(trace).toContainText("chat.completion");
      await expect(trace).toBeInViewport();
    });

    test("tapping an audit entry shows its trace where the user is", async () => {
      if (name === "phone") {
        // The trace opened from the Feedback tab is a sheet over the table: Escape closes it.
        const sheet = page.getByRole("dialog", { name: /^Event \d+/ });
        await expect(sheet).toBeVisible();
        await page.keyboard.press("Escape");
        await expect(sheet).toBeHidden();
      } else {
        await page.getByTestId("audit-trace").getByRole("button", { name: "Close" }).click();
      }
      await expect(page).toHaveURL(/\/console\/audit$/);
      const table = page.getByRole("table", { name: "Audit events" });
      // An entry far down the list: scroll to it first, as a person would.
      const links = table.getByRole("link", { name: /^Open event/ });
      await expect(links.nth(5)).toBeVisible();
      const link = links.nth(5);
      await link.scrollIntoViewIfNeeded();
      await link.click();
      const trace = page.getByTestId("audit-trace");
      await expect(trace).toBeVisible();
      await expect(trace).toBeInViewport();
      if (name === "phone") {
        const sheet = page.getByRole("dialog", { name: /^Event \d+/ });
        await expect(sheet).toBeInViewport({ ratio: 0.9 });
        await expect(sheet.getByRole("button", { name: "Close" })).toBeFocused();
        // Focus stays in the sheet.
        for (let i = 0; i < 6; i++) await page.keyboard.press("Tab");
        expect(await sheet.evaluate((el) => el.contains(document.activeElement))).toBe(true);
        await expectAccessible(page, "audit trace sheet at phone width");
        await shot(page, "console-audit-phone");
        await page.keyboard.press("Escape");
        await expect(sheet).toBeHidden();
        await expect(link).toBeFocused();
      } else {
        await expectAccessible(page, "audit trace beside the table");
        await shot(page, "console-audit");
      }
    });

    test("routing changes wait for a confirmation that says what changes", async () => {
      await openTab(page, "Router");
      const rollback = page.getByRole("button", { name: "Roll back" });
      await expect(rollback).toBeDisabled();
      await expect(rollback).toHaveAttribute("title", /no version was promoted before the current one/);
      await expect(page.getByText("Roll back is off: no version was promoted before the current one")).toBeVisible();
      const versions = page.getByRole("table", { name: "Router versions" });
      const active = versions.getByRole("row").filter({ hasText: "active" });
      const activeVersion = (await active.locator("code").first().textContent())!.trim();
      const other = versions.getByRole("row").filter({ has: page.getByRole("button", { name: "Promote" }) }).first();
      const otherVersion = (await other.locator("code").first().textContent())!.trim();

      if (name === "desktop") {
        const promote = other.getByRole("button", { name: "Promote" });
        await promote.click();
        const dialog = page.getByRole("dialog", { name: `Promote ${otherVersion}?` });
        await expect(dialog).toContainText(`routed by ${otherVersion} instead of ${activeVersion}`);
        await expect(dialog.getByRole("button", { name: "Cancel" })).toBeFocused();
        await expectAccessible(page, "promote confirmation");
        await shot(page, "console-confirm");
        await page.keyboard.press("Escape");
        await expect(dialog).toBeHidden();
        await expect(promote).toBeFocused();
        await expect(page.getByRole("table", { name: "Router versions" }).getByRole("row").filter({ hasText: "active" })).toContainText(activeVersion);

        await promote.click();
        await page.keyboard.press("Tab");
        await expect(dialog.getByRole("button", { name: `Promote ${otherVersion}` })).toBeFocused();
        await page.keyboard.press("Tab");
        await expect(dialog.getByRole("button", { name: "Cancel" })).toBeFocused();
        await dialog.getByRole("button", { name: `Promote ${otherVersion}` }).click();
        await expect(page.getByRole("status")).toHaveText(`Promoted ${otherVersion}.`);
        await expect(page.getByText(`Roll back re-activates ${activeVersion}`)).toBeVisible();
        await rollback.click();
        const back = page.getByRole("dialog", { name: "Roll back the router?" });
        await expect(back).toContainText(`routed by ${activeVersion} again instead of ${otherVersion}`);
        await back.getByRole("button", { name: `Roll back to ${activeVersion}` }).click();
        await expect(page.getByRole("status")).toHaveText(`Rolled back to ${activeVersion}.`);
        await expect(rollback).toBeDisabled();
      } else {
        await other.getByRole("button", { name: "Shadow" }).click();
        const dialog = page.getByRole("dialog", { name: `Run ${otherVersion} in shadow?` });
        await expect(dialog).toContainText(`Answers still follow ${activeVersion}`);
        await expect(dialog).toBeInViewport();
        await expectAccessible(page, "shadow confirmation at phone width");
        await shot(page, "console-confirm-phone");
        await dialog.getByRole("button", { name: `Shadow ${otherVersion}` }).click();
        await expect(page.getByRole("status")).toHaveText(`${otherVersion} now runs in shadow.`);
        await versions.getByRole("button", { name: "Stop shadow" }).click();
        const stop = page.getByRole("dialog", { name: `Stop the shadow run of ${otherVersion}?` });
        await stop.getByRole("button", { name: "Stop shadow" }).click();
        await expect(page.getByRole("status")).toHaveText("Shadow stopped.");
      }
      // Either way the version serving at the start serves at the end.
      await expect(versions.getByRole("row").filter({ hasText: "active" })).toContainText(activeVersion);
    });

    test("clearing a quota removes its row and says what applies now", async () => {
      const email = `quota-${name}@example.com`;
      await createKey(email);
      await openTab(page, "Users and quotas");
      const form = page.getByRole("form", { name: "Set a quota" });
      const table = page.getByRole("table", { name: "Quota policies" });
      const status = page.getByRole("status");
      // A company-wide limit (high: the other specs share this server), then the user's own.
      await form.getByLabel("Scope").selectOption("global");
      await form.getByLabel("Requests per minute").fill("100000");
      await form.getByRole("button", { name: "Set quota" }).click();
      await expect(table.getByRole("row", { name: /^global / })).toContainText("100,000");
      await form.getByLabel("Scope").selectOption("user");
      await form.getByLabel("User email").fill(email);
      await form.getByLabel("Requests per minute").fill("30");
      await form.getByLabel("Tokens per day").fill("50000");
      await form.getByRole("button", { name: "Set quota" }).click();
      const row = table.getByRole("row", { name: new RegExp(`user:${email}`) });
      await expect(row).toContainText("30");
      // The month limit is not set for the user: the cell says the global one does not set it either.
      await expect(row.getByRole("cell").nth(2)).toHaveText("no limit");

      await page.getByRole("button", { name: `Clear the quota of user:${email}` }).click();
      await expect(status).toHaveText(`Cleared the limits of user:${email}: the limits of global still apply to it.`);
      await expect(row).toBeHidden();
      await expect(table.getByRole("cell", { name: "–", exact: true })).toHaveCount(0);
      await expectAccessible(page, `quota cleared (${name})`);
      await shot(page, `console-quota-cleared${suffix}`);

      await page.getByRole("button", { name: "Clear the quota of global" }).click();
      await expect(status).toHaveText("Cleared the limits of global: it has no quota now.");
      await expect(table.getByRole("row", { name: /^global / })).toBeHidden();
    });
  });
}

// The console's Reviews tab end to end (docs/review.md). The shared server (server.ts)
// runs the shipped experts.yaml, which reviews nothing, so this spec starts its own
// `expertgate serve` whose legal expert holds every answer for the legal-reviewers group,
// on the fake LLM the global setup already runs.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { expect, request, test, type APIRequestContext, type Page } from "@playwright/test";

import { env, expectAccessible, shot } from "./helpers";

test.describe.configure({ mode: "serial" });

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PYTHON = process.env.EXPERTGATE_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const QUESTION = "what is the liability cap in our MSA contract";

// The shipped experts, on the fake LLM, with `review: {when: always, delivery: hold}` on legal.
const WRITE_EXPERTS = `
import sys, yaml
from pathlib import Path
from tests.fakes.serve_openai import write_experts
path = Path(sys.argv[1])
write_experts(path, sys.argv[2])
raw = yaml.safe_load(path.read_text())
raw["experts"]["legal"]["review"] = {"when": "always", "delivery": "hold", "group": "legal-reviewers"}
path.write_text(yaml.safe_dump(raw, sort_keys=False))
`;

let work = "";
let server: ChildProcess | null = null;
let url = "";
let admin: APIRequestContext;
const keys: { reviewer: string; outsider: string } = { reviewer: "", outsider: "" };
let page: Page;

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

async function waitReady(child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`expertgate serve exited (${child.exitCode}); see its log above`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`expertgate serve was not ready within ${ms} ms`);
}

/** Ask the legal expert as the admin; the answer is held: returns the review's id. */
async function askLegal(): Promise<string> {
  const r = await admin.post("/v1/chat/completions", {
    data: { model: "legal", messages: [{ role: "user", content: QUESTION }] },
  });
  expect(r.status()).toBe(200);
  const body = (await r.json()) as { choices: { message: { content: string } }[]; expertgate: { review?: { id: string; status: string } } };
  expect(body.expertgate.review?.status).toBe("pending");
  expect(body.choices[0]!.message.content).toContain("being reviewed by a person");
  return body.expertgate.review!.id;
}

async function createKey(email: string, groups: string[]): Promise<string> {
  const r = await admin.post("/api/v1/admin/keys", { data: { email, role: "reviewer", groups, name: "e2e" } });
  expect(r.status(), await r.text()).toBeLessThan(300);
  return ((await r.json()) as { secret: string }).secret;
}

async function signIn(key: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("link", { name: "Console" })).toBeVisible();
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(180_000);
  work = mkdtempSync(join(tmpdir(), "expertgate-e2e-review-"));
  const base: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: ROOT, LITELLM_LOCAL_MODEL_COST_MAP: "True", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1" };
  for (const k of Object.keys(base)) if (k.startsWith("EXPERTGATE_") && k !== "EXPERTGATE_PYTHON") delete base[k];
  const experts = join(work, "experts.yaml");
  const wrote = spawnSync(PYTHON, ["-c", WRITE_EXPERTS, experts, env("EXPERTGATE_E2E_FAKE")], { cwd: ROOT, env: base, encoding: "utf8" });
  if (wrote.status !== 0) throw new Error(`could not write experts.yaml: ${wrote.stderr}`);

  url = `http://127.0.0.1:${await freePort()}`;
  server = spawn(PYTHON, ["-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", url.split(":").pop()!], {
    cwd: work,
    env: {
      ...base,
      EXPERTGATE_DATA_DIR: join(work, "data"),
      EXPERTGATE_EXPERTS_FILE: experts,
      EXPERTGATE_WEB_DIR: join(ROOT, "frontend", "dist"),
      EXPERTGATE_LOG_LEVEL: "warning",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitReady(server, 120_000);
  const adminKey = readFileSync(join(work, "data", "admin.key"), "utf8").trim();
  admin = await request.newContext({ baseURL: url, extraHTTPHeaders: { authorization: `Bearer ${adminKey}` } });
  keys.reviewer = await createKey("rita@example.com", ["legal-reviewers"]);
  keys.outsider = await createKey("otto@example.com", ["support-reviewers"]);
  page = await browser.newPage({ baseURL: url });
});

test.afterAll(async () => {
  await page?.close();
  await admin?.dispose();
  if (server && server.exitCode === null) {
    const child = server;
    await new Promise<void>((done) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => {
        clearTimeout(timer);
        done();
      });
      child.kill("SIGTERM");
    });
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

test("a reviewer outside the expert's group sees the Reviews tab only, and an empty queue", async () => {
  await askLegal();
  await signIn(keys.outsider);
  await page.getByRole("link", { name: "Console" }).click();
  const tabs = page.getByRole("navigation", { name: "Console sections" }).getByRole("link");
  await expect(tabs).toHaveText(["Reviews"]);
  await expect(page.getByText("No answers are waiting for review.")).toBeVisible();
  await expectAccessible(page, "console reviews (empty)");
  await page.getByRole("button", { name: "Sign out" }).click();
});

test("the legal reviewer edits a held answer with a reason; it leaves the queue and the asker gets the text", async () => {
  await signIn(keys.reviewer);
  await page.goto("/console/reviews");
  const table = page.getByRole("table", { name: "Pending reviews" });
  const link = table.getByRole("link", { name: QUESTION });
  await expect(link).toHaveCount(1);
  await expect(table.getByRole("row").nth(1)).toContainText("legal");
  await link.click();
  const draft = page.getByTestId("review-draft");
  await expect(draft).toContainText("twelve months of fees");
  await expect(page.getByRole("heading", { name: /Review of a legal answer/ })).toBeFocused();
  await expectAccessible(page, "console review open");

  // The reason is required: nothing is sent without one.
  await page.getByRole("radio", { name: "Edit" }).check();
  const text = page.getByLabel("Edited answer");
  await expect(text).toHaveValue(/twelve months of fees/);
  await text.fill("The MSA caps liability at twelve months of fees.");
  await page.getByRole("button", { name: "Send edited answer" }).click();
  await expect(page.getByText("Give a reason: it is recorded in the audit log.")).toBeVisible();
  await expect(page.getByLabel("Reason (required)")).toBeFocused();

  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "console-review-phone");
  await page.setViewportSize({ width: 1280, height: 800 });

  await page.getByLabel("Reason (required)").fill("the sign-off claim is not in the contract");
  await page.getByRole("button", { name: "Send edited answer" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Edited: the asker now sees your text." })).toBeVisible();
  await expect(page.getByText("No answers are waiting for review.")).toBeVisible();
  await shot(page, "console-reviews");
  await expectAccessible(page, "console reviews (decided)");

  const list = await admin.get("/api/v1/reviews?status=edited");
  const [decided] = ((await list.json()) as { data: { final_text: string; reviewer_email: string; reason: string }[] }).data;
  expect(decided).toMatchObject({
    final_text: "The MSA caps liability at twelve months of fees.",
    reviewer_email: "rita@example.com",
    reason: "the sign-off claim is not in the contract",
  });
});

test("a review decided by someone else meanwhile says so and refreshes the queue", async () => {
  const id = await askLegal();
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByRole("table", { name: "Pending reviews" }).getByRole("link", { name: QUESTION }).click();
  const r = await admin.post(`/api/v1/reviews/${id}`, { data: { decision: "reject", reason: "decided by the admin first" } });
  expect(r.status()).toBe(200);
  await page.getByRole("radio", { name: "Approve" }).check();
  await page.getByLabel("Reason (required)").fill("looks right");
  await page.getByRole("button", { name: "Approve answer" }).click();
  await expect(page.getByRole("alert")).toContainText("Someone else decided this review");
  await expect(page.getByTestId("review-draft")).toHaveCount(0);
  await expect(page.getByText("No answers are waiting for review.")).toBeVisible();
});

// Global setup: a real `expertgate serve` on a free loopback port with a temp data dir,
// its experts pointed at the fake OpenAI server (tests/fakes/serve_openai.py), so the
// answers are deterministic and no model loads. Returns the teardown.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PYTHON = process.env.EXPERTGATE_PYTHON ?? join(ROOT, ".venv", "bin", "python");

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

function firstLine(child: ChildProcess, what: string, ms: number): Promise<string> {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} printed nothing in ${ms} ms`)), ms);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      ok(line.trim());
    });
    child.once("exit", (code) => fail(new Error(`${what} exited early (${code})`)));
  });
}

async function waitReady(url: string, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let exited: number | null = null;
  child.once("exit", (code) => (exited = code ?? -1));
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`expertgate serve exited (${exited}); see its log above`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`expertgate serve was not ready within ${ms} ms`);
}

/** SIGTERM, then wait for the exit (SIGKILL after 10 s) so the temp dir is no longer in use. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    child.kill("SIGTERM");
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const work = mkdtempSync(join(tmpdir(), "expertgate-e2e-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYTHONPATH: ROOT,
    LITELLM_LOCAL_MODEL_COST_MAP: "True",
    HF_HUB_OFFLINE: "1",
    TRANSFORMERS_OFFLINE: "1",
  };
  for (const k of Object.keys(env)) if (k.startsWith("EXPERTGATE_") && k !== "EXPERTGATE_PYTHON") delete env[k];

  const experts = join(work, "experts.yaml");
  const fake = spawn(PYTHON, ["-m", "tests.fakes.serve_openai", "--experts-out", experts], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const apiBase = await firstLine(fake, "the fake OpenAI server", 30_000);
  // A local OpenID Connect provider that signs its one user in without asking (sso.spec.ts).
  const idp = spawn(PYTHON, ["-m", "tests.fakes.serve_oidc", "--email", "sam@example.com", "--groups", "staff"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const oidc = JSON.parse(await firstLine(idp, "the fake OIDC provider", 30_000)) as Record<string, string>;

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = spawn(PYTHON, ["-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", String(port)], {
    // Run from the temp dir so the repository's .env and ./data are not used.
    cwd: work,
    env: {
      ...env,
      EXPERTGATE_DATA_DIR: join(work, "data"),
      EXPERTGATE_EXPERTS_FILE: experts,
      EXPERTGATE_WEB_DIR: join(ROOT, "frontend", "dist"),
      EXPERTGATE_LOG_LEVEL: "warning",
      EXPERTGATE_OIDC_ISSUER: oidc.issuer,
      EXPERTGATE_OIDC_CLIENT_ID: oidc.client_id,
      EXPERTGATE_OIDC_CLIENT_SECRET: oidc.client_secret,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    await waitReady(url, server, 120_000);
  } catch (err) {
    server.kill("SIGTERM");
    fake.kill("SIGTERM");
    idp.kill("SIGTERM");
    throw err;
  }
  process.env.EXPERTGATE_E2E_URL = url;
  process.env.EXPERTGATE_E2E_KEY = readFileSync(join(work, "data", "admin.key"), "utf8").trim();
  process.env.EXPERTGATE_E2E_FAKE = apiBase;

  return async () => {
    await Promise.all([stop(server), stop(fake), stop(idp)]);
    rmSync(work, { recursive: true, force: true });
  };
}

// Sign in with SSO in a real browser: the server's login redirect, the local OIDC
// provider (tests/fakes/serve_oidc.py, auto-consent), the callback's session cookie,
// then sign out. The provider signs in sam@example.com with the groups claim ["staff"].
import { expect, test } from "@playwright/test";

import { env, expectAccessible } from "./helpers";

test("sign in with SSO, see who I am, sign out", async ({ browser }) => {
  const page = await browser.newPage({ baseURL: env("EXPERTGATE_E2E_URL") });
  await page.goto("/");
  const sso = page.getByRole("link", { name: "Sign in with SSO" });
  await expect(sso).toBeVisible();
  await expect(page.getByLabel("API key")).toBeVisible(); // the key stays an option
  await expectAccessible(page, "sign-in with SSO");

  await sso.click();
  await expect(page.getByRole("heading", { name: "Ask the experts" })).toBeVisible();
  await expect(page.getByTestId("who")).toHaveText("sam@example.com");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "eg_session");
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe("Lax");
  expect(await page.evaluate(() => document.cookie)).not.toContain("eg_session"); // unreadable by script

  const me = await page.evaluate(async () => (await fetch("/api/v1/me")).json());
  expect(me.groups).toEqual(["staff"]);
  expect(me.channel).toBe("web");

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByLabel("API key")).toBeVisible();
  expect(await page.evaluate(async () => (await fetch("/api/v1/me")).status)).toBe(401);
  await page.reload();
  await expect(page.getByRole("link", { name: "Sign in with SSO" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Ask the experts" })).toHaveCount(0);
  await page.close();
});

"""SSO end to end on PostgreSQL: the real login flow against a local OIDC provider.

A browser is played by an httpx client that follows redirects between the app (in
process) and the provider (a real HTTP server on loopback) and keeps cookies. Every
refusal is checked for its status, its stable code and its audit event.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest

from backend.app import create_app
from backend.oidc.client import IdClaims
from backend.oidc.service import sign_in
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.oidc_provider import FakeOidcProvider, FakeUser, Tweak
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.integration

APP = "http://testserver"
CSRF = {"x-requested-with": "expertgate"}


@pytest.fixture
def provider() -> Iterator[FakeOidcProvider]:
    server = FakeOidcProvider(user=FakeUser("u-42", "Sam@Example.com", ("staff", "eg-admins"))).start()
    yield server
    server.stop()


@pytest.fixture
async def sso(
    pg_url: str, tmp_path: Path, llm: FakeOpenAI, encoder: Encoder, provider: FakeOidcProvider
) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        secret_key="test-secret-key-0123456789abcdef",
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_admin_groups=("eg-admins",),
        auth_failures_per_minute=4,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


@dataclass
class Browser:
    http: httpx.AsyncClient
    provider: FakeOidcProvider

    async def login(self) -> httpx.Response:
        """Follow the whole flow: app -> provider -> callback -> app."""
        return await self.http.get("/auth/oidc/login", follow_redirects=True)

    async def callback_url(self) -> str:
        """Go as far as the provider's redirect back (the state cookie is set)."""
        start = await self.http.get("/auth/oidc/login")
        assert start.status_code == 302
        back = await self.http.get(start.headers["location"])
        assert back.status_code == 302
        return back.headers["location"]


@pytest.fixture
async def browser(sso: Runtime, provider: FakeOidcProvider) -> AsyncIterator[Browser]:
    app = create_app(sso.settings, sso)
    app.state.runtime = sso
    # A client address of its own, so failed-login budgets never leak between tests.
    peer = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    mounts = {
        APP: httpx.ASGITransport(app=app, client=(peer, 40000)),
        provider.issuer: httpx.AsyncHTTPTransport(),
    }
    async with httpx.AsyncClient(mounts=mounts, base_url=APP) as http:
        yield Browser(http, provider)


async def audit_rows(
    sso: Runtime, pg_url: str, action: str
) -> list[tuple[str | None, str | None, int | None, dict[str, object]]]:
    await sso.chainer.drain()  # the audit events wait in the outbox until chained
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT user_email, reason, status, payload FROM audit_events WHERE action = %s ORDER BY seq", (action,)
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_auth_config_tells_the_spa_sso_is_on(browser: Browser) -> None:
    r = await browser.http.get("/api/v1/auth/config")
    assert r.status_code == 200
    assert r.json() == {
        "oidc_enabled": True,
        "login_url": "/auth/oidc/login",
        "logout_url": "/auth/logout",
        "csrf_header": "x-requested-with",
        "csrf_value": "expertgate",
    }


async def test_login_provisions_the_user_and_opens_a_cookie_session(
    browser: Browser, provider: FakeOidcProvider, pg_url: str, sso: Runtime
) -> None:
    r = await browser.login()
    assert [h.status_code for h in r.history] == [302, 302, 303]
    assert r.url == httpx.URL(f"{APP}/")
    session_cookie = browser.http.cookies.get("eg_session")
    assert session_cookie

    # PKCE, state and nonce went to the provider; the verifier came back to /token.
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["state"] and sent["nonce"]
    assert sent["redirect_uri"] == f"{APP}/auth/oidc/callback"
    assert provider.token_requests[-1]["code_verifier"]

    me = await browser.http.get("/api/v1/me")
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == "sam@example.com"
    assert body["groups"] == ["eg-admins", "staff"]
    assert body["roles"] == ["admin", "user"]
    assert body["channel"] == "web" and body["key"] is None

    with psycopg.connect(pg_url) as conn:
        subject = conn.execute("SELECT oidc_subject FROM users WHERE email = 'sam@example.com'").fetchone()
        hashes = [row[0] for row in conn.execute("SELECT token_hash FROM web_sessions").fetchall()]
    assert subject == (f"{provider.issuer} u-42",)
    assert len(hashes) == 1 and session_cookie not in hashes[0]

    [(email, _reason, status, payload)] = await audit_rows(sso, pg_url, "auth.login")
    assert email == "sam@example.com" and status == 303
    assert payload["subject"] == "u-42" and payload["groups"] == ["eg-admins", "staff"]


async def test_a_later_login_applies_the_providers_current_groups(
    browser: Browser, provider: FakeOidcProvider, sso: Runtime
) -> None:
    await make_key(sso, "sam@example.com", roles={"auditor"}, groups={"legal"})
    await browser.login()
    me = (await browser.http.get("/api/v1/me")).json()
    # groups replaced by the claim; admin granted by group; auditor (unmapped) kept.
    assert me["groups"] == ["eg-admins", "staff"]
    assert me["roles"] == ["admin", "auditor", "user"]

    provider.user = FakeUser("u-42", "sam@example.com", ("staff",))
    await browser.login()
    me = (await browser.http.get("/api/v1/me")).json()
    assert me["groups"] == ["staff"]
    assert me["roles"] == ["auditor", "user"]


@pytest.mark.parametrize(
    ("tweak", "reason"),
    [
        (Tweak(nonce="not-the-login-nonce"), "nonce"),
        (Tweak(expires_in_s=-600), "expired"),
        (Tweak(audience="another-client"), "audience"),
        (Tweak(issuer="http://evil.example"), "issuer"),
        (Tweak(foreign_key=True), "signature"),
    ],
)
async def test_a_bad_id_token_is_refused_and_audited(
    browser: Browser, provider: FakeOidcProvider, pg_url: str, tweak: Tweak, reason: str, sso: Runtime
) -> None:
    provider.tweak = tweak
    r = await browser.login()
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "sso_token_invalid"
    assert "eg_session" not in browser.http.cookies
    assert (await browser.http.get("/api/v1/me")).status_code == 401
    [(_email, logged_reason, status, payload)] = await audit_rows(sso, pg_url, "auth.login_failed")
    assert (logged_reason, status) == (reason, 401)
    assert payload["error"]["code"] == "sso_token_invalid"  # type: ignore[index]


async def test_an_unverified_email_does_not_take_over_an_existing_account(
    browser: Browser, provider: FakeOidcProvider, pg_url: str, sso: Runtime
) -> None:
    await make_key(sso, "sam@example.com", roles={"admin"})  # an account made with an API key
    provider.tweak = Tweak(omit_email_verified=True)
    r = await browser.login()
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "sso_refused"
    assert "eg_session" not in browser.http.cookies
    assert [row[1] for row in await audit_rows(sso, pg_url, "auth.login_failed")] == ["email_unverified"]
    linked = await browser.login()  # the provider vouches for the email: the account is linked
    assert [h.status_code for h in linked.history] == [302, 302, 303]
    me = await browser.http.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["email"] == "sam@example.com"


async def test_two_first_logins_at_once_both_succeed(sso: Runtime) -> None:
    claims = IdClaims(issuer="http://idp.test", subject="u-77", email="twin@example.com", name="Twin",
                      groups=("staff",), email_verified=True)  # fmt: skip
    web = sso.web_auth
    signed = await asyncio.gather(
        *(sign_in(sso.db, sso.audit, web.mapping, claims, web.session_ttl, "10.0.0.1") for _ in range(2))
    )
    assert signed[0].principal.user_id == signed[1].principal.user_id
    assert signed[0].token != signed[1].token  # one session per tab


async def test_a_callback_with_another_state_is_refused(browser: Browser, pg_url: str, sso: Runtime) -> None:
    url = urlsplit(await browser.callback_url())
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["state"] = "forged-state"
    r = await browser.http.get(f"{url.path}?{urlencode(query)}")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "sso_state_invalid"
    assert [row[1] for row in await audit_rows(sso, pg_url, "auth.login_failed")] == ["state_mismatch"]


async def test_a_callback_without_the_login_cookie_is_refused(browser: Browser, pg_url: str, sso: Runtime) -> None:
    callback = await browser.callback_url()
    browser.http.cookies.clear()  # as if the code was injected into another browser
    r = await browser.http.get(callback)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "sso_state_invalid"
    assert [row[1] for row in await audit_rows(sso, pg_url, "auth.login_failed")] == ["state_cookie_missing"]


async def test_a_replayed_code_is_refused(browser: Browser, pg_url: str, sso: Runtime) -> None:
    callback = await browser.callback_url()
    login_cookie = browser.http.cookies["eg_oidc_login"]
    assert (await browser.http.get(callback)).status_code == 303
    browser.http.cookies.clear()
    # Even with the login cookie put back, the provider will not take its code twice.
    browser.http.cookies.set("eg_oidc_login", login_cookie, path="/auth/oidc")
    again = await browser.http.get(callback)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "sso_refused"
    assert "eg_session" not in browser.http.cookies
    assert [row[1] for row in await audit_rows(sso, pg_url, "auth.login_failed")] == ["code_rejected"]


async def test_the_provider_saying_no_is_refused(
    browser: Browser, provider: FakeOidcProvider, pg_url: str, sso: Runtime
) -> None:
    provider.deny = True
    r = await browser.login()
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "sso_refused"
    assert [row[1] for row in await audit_rows(sso, pg_url, "auth.login_failed")] == ["provider_denied"]


async def test_unsafe_cookie_requests_need_the_csrf_header(browser: Browser, pg_url: str, sso: Runtime) -> None:
    await browser.login()
    refused = await browser.http.post("/v1/route", json={"text": "how do I rebase a branch?"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    [(email, _reason, status, payload)] = await audit_rows(sso, pg_url, "http.refused")
    assert (email, status) == ("sam@example.com", 403)
    assert payload["error"]["code"] == "csrf_failed"  # type: ignore[index]

    allowed = await browser.http.post("/v1/route", json={"text": "how do I rebase a branch?"}, headers=CSRF)
    assert allowed.status_code == 200
    # Safe methods need no header.
    assert (await browser.http.get("/api/v1/me")).status_code == 200


async def test_logout_revokes_the_session(browser: Browser, pg_url: str, sso: Runtime) -> None:
    await browser.login()
    cookie = browser.http.cookies["eg_session"]
    assert (await browser.http.get("/api/v1/me")).status_code == 200  # the session, now cached by this process
    assert (await browser.http.post("/auth/logout")).status_code == 403  # CSRF header missing
    r = await browser.http.post("/auth/logout", headers=CSRF)
    assert r.status_code == 204
    assert "eg_session" not in browser.http.cookies
    # The old cookie value, replayed, is dead on the server too.
    replay = await browser.http.get("/api/v1/me", cookies={"eg_session": cookie})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "session_invalid"
    assert [row[0] for row in await audit_rows(sso, pg_url, "auth.logout")] == ["sam@example.com"]
    with psycopg.connect(pg_url) as conn:
        revoked = conn.execute("SELECT count(*) FROM web_sessions WHERE revoked_at IS NOT NULL").fetchone()
    assert revoked == (1,)


async def test_bearer_keys_still_work_beside_sso(browser: Browser, sso: Runtime) -> None:
    key = await make_key(sso, "kim@example.com")
    r = await browser.http.get("/api/v1/me", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["email"] == "kim@example.com"
    # A Bearer request needs no CSRF header: no browser sends it by itself.
    r = await browser.http.post("/v1/route", json={"text": "hi"}, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200


async def test_a_flood_of_bad_keys_gets_429(browser: Browser, sso: Runtime, pg_url: str) -> None:
    good = await make_key(sso, "kim@example.com")
    statuses = []
    for i in range(6):
        r = await browser.http.get("/api/v1/me", headers={"authorization": f"Bearer eg-guess-{i}"})
        statuses.append(r.status_code)
    assert statuses == [401, 401, 401, 401, 429, 429]
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "too_many_failed_logins"
    # While throttled even the right key is refused: no oracle for the guesser.
    r = await browser.http.get("/api/v1/me", headers={"authorization": f"Bearer {good}"})
    assert r.status_code == 429
    assert len(await audit_rows(sso, pg_url, "auth.failed")) == 4


async def test_a_flood_of_failed_callbacks_gets_429(browser: Browser, provider: FakeOidcProvider) -> None:
    statuses = []
    for _ in range(5):
        provider.tweak = Tweak(audience="another-client")
        statuses.append((await browser.login()).status_code)
    assert statuses == [401, 401, 401, 401, 429]

"""Web sign-in without services: the login state cookie, the in-process failed-login
throttle, the CSRF rule, the claims-to-roles mapping, and the whole SSO flow on the
embedded SQLite default against the local OIDC provider (loopback only)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.identity.sessions import CsrfRejected, check_csrf
from backend.identity.throttle import MemoryLoginThrottle, TooManyFailedLogins
from backend.oidc.errors import LoginStateInvalid
from backend.oidc.service import RoleMapping
from backend.oidc.state import LOGIN_STATE_TTL_S, StateSigner
from backend.oidc.wiring import build_web_auth
from backend.runtime import build_runtime
from backend.settings import Settings, SettingsError
from router.encoder import Encoder
from tests.conftest import write_experts_yaml
from tests.fakes.oidc_provider import FakeOidcProvider, FakeUser
from tests.fakes.openai_server import FakeOpenAI


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_sealed_state_opens_only_with_its_own_state_key_and_time() -> None:
    clock = Clock()
    signer = StateSigner(b"k" * 32, clock=clock)
    login = signer.new_state()
    cookie = signer.seal(login)
    assert signer.open(cookie, login.state) == login
    assert len(login.verifier) >= 43 and login.challenge != login.verifier  # RFC 7636 bounds

    cases = {
        "state_mismatch": (cookie, "another-state"),
        "state_cookie_missing": (None, login.state),
        "state_forged": (cookie[:-2] + "xx", login.state),
    }
    for reason, (value, state) in cases.items():
        with pytest.raises(LoginStateInvalid) as refused:
            signer.open(value, state)
        assert refused.value.reason == reason and refused.value.status == 400

    with pytest.raises(LoginStateInvalid) as refused:
        StateSigner(b"another key" * 3, clock=clock).open(cookie, login.state)
    assert refused.value.reason == "state_forged"

    clock.now += LOGIN_STATE_TTL_S + 1
    with pytest.raises(LoginStateInvalid) as refused:
        signer.open(cookie, login.state)
    assert refused.value.reason == "state_expired"


async def test_the_memory_throttle_refuses_after_the_budget_and_refills() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(per_minute=3, clock=clock)
    for _ in range(3):
        await throttle.check("198.51.100.1")
        await throttle.failed("198.51.100.1")
    with pytest.raises(TooManyFailedLogins) as refused:
        await throttle.check("198.51.100.1")
    assert refused.value.retry_after_s == pytest.approx(20.0)  # one failure per 20 s at 3/min
    await throttle.check("198.51.100.2")  # per address
    clock.now += 20.0
    await throttle.check("198.51.100.1")


async def test_the_memory_throttle_forgets_the_oldest_clients_first() -> None:
    throttle = MemoryLoginThrottle(per_minute=1, max_clients=2, clock=Clock())
    for client in ("a", "b", "c"):
        await throttle.failed(client)
    await throttle.check("a")  # forgotten: the budget is full again
    with pytest.raises(TooManyFailedLogins):
        await throttle.check("c")


def test_csrf_needs_the_header_on_unsafe_methods_only() -> None:
    check_csrf("GET", None)
    check_csrf("POST", "expertgate")
    for method, header in (("POST", None), ("DELETE", "XMLHttpRequest"), ("PUT", "")):
        with pytest.raises(CsrfRejected):
            check_csrf(method, header)


def test_roles_follow_the_configured_groups_and_leave_unmapped_roles_alone() -> None:
    mapping = RoleMapping(admin_groups=("eg-admins",))
    assert mapping.roles(set(), {"eg-admins"}) == {"admin", "user"}
    assert mapping.roles({"admin", "auditor", "user"}, {"staff"}) == {"auditor", "user"}
    assert RoleMapping().roles({"admin"}, set()) == {"admin", "user"}


async def test_without_sso_configured_the_spa_is_told_and_login_is_404(client: httpx.AsyncClient) -> None:
    config = (await client.get("/api/v1/auth/config")).json()
    assert config["oidc_enabled"] is False and config["login_url"] is None
    r = await client.get("/auth/oidc/login")
    assert r.status_code == 404 and r.json()["error"]["code"] == "sso_disabled"
    # Logging out with no session is not an error (and needs no CSRF header).
    assert (await client.post("/auth/logout")).status_code == 204


def test_half_an_sso_configuration_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="EXPERTGATE_OIDC_CLIENT_ID"):
        build_web_auth(Settings(oidc_issuer="https://idp.example"), None)


async def test_sso_login_and_logout_on_the_embedded_sqlite_default(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    provider = FakeOidcProvider(user=FakeUser("u-7", "ana@example.com", ("support",))).start()
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
    )
    runtime = build_runtime(settings, encoder=encoder, environ={})
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    mounts = {"http://testserver": httpx.ASGITransport(app=app), provider.issuer: httpx.AsyncHTTPTransport()}
    try:
        async with httpx.AsyncClient(mounts=mounts, base_url="http://testserver") as browser:
            assert (await browser.get("/auth/oidc/login", follow_redirects=True)).status_code == 200
            me = (await browser.get("/api/v1/me")).json()
            assert (me["email"], me["groups"], me["roles"]) == ("ana@example.com", ["support"], ["user"])
            assert (await browser.post("/auth/logout", headers={"x-requested-with": "expertgate"})).status_code == 204
            assert (await browser.get("/api/v1/me")).status_code == 401
    finally:
        await runtime.close()
        provider.stop()

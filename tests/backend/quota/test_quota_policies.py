"""Quota policies in SQL: the admin API and the CLI set them (audited); a caller's limits
resolve user, team, global."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.audit.types import Actor
from backend.cli.main import main
from backend.principal import Principal
from backend.quota.errors import QuotaExceeded
from backend.quota.limiter import MemoryLimiter
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.quota.service import QuotaService, estimate_tokens
from backend.quota.types import QuotaPolicy
from backend.runtime import Runtime
from experts.types import ChatMessage
from tests.conftest import audit_events, client_as, make_key


async def test_admin_sets_policies_audited_and_limits_resolve(runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    user = await make_key(runtime, "dana@example.com", team="legal")
    async with client_as(runtime, admin) as root, client_as(runtime, user) as dana:
        r = await root.put(
            "/api/v1/admin/quotas", json={"scope": "user", "name": "Dana@example.com", "rpm": 5, "on_limit": "degrade"}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "scope": "user",
            "name": "dana@example.com",
            "subject": "user:dana@example.com",
            "rpm": 5,
            "tokens_per_day": None,
            "tokens_per_month": None,
            "on_limit": "degrade",
        }
        # A partial change keeps the other fields; 0 clears a limit.
        r = await root.put(
            "/api/v1/admin/quotas", json={"scope": "user", "name": "dana@example.com", "tokens_per_day": 900}
        )
        assert (r.json()["rpm"], r.json()["tokens_per_day"], r.json()["on_limit"]) == (5, 900, "degrade")
        r = await root.put("/api/v1/admin/quotas", json={"scope": "user", "name": "dana@example.com", "rpm": 0})
        assert r.json()["rpm"] is None
        assert (
            await root.put("/api/v1/admin/quotas", json={"scope": "team", "name": "legal", "tokens_per_month": 10**6})
        ).status_code == 200
        assert (await root.put("/api/v1/admin/quotas", json={"scope": "global", "rpm": 1000})).status_code == 200
        r = await root.put("/api/v1/admin/quotas", json={"scope": "team", "name": "nobody", "rpm": 1})
        assert r.status_code == 404
        r = await root.put("/api/v1/admin/quotas", json={"scope": "user", "name": "x@example.com", "rpm": -1})
        assert r.status_code in (400, 422)
        assert (await dana.put("/api/v1/admin/quotas", json={"scope": "global", "rpm": 1})).status_code == 403
        assert (await dana.get("/api/v1/admin/quotas")).status_code == 403
        listed = (await root.get("/api/v1/admin/quotas")).json()
        assert [p["subject"] for p in listed] == ["global", "team:legal", "user:dana@example.com"]

    events = await audit_events(runtime, action="quota.set")
    assert len(events) == 5  # every successful change, none for the refused ones
    assert all(e.user_email == "root@example.com" for e in events)
    async with runtime.db.session() as session:
        dana_principal = Principal(
            user_id=0, email="dana@example.com", team="legal", groups=frozenset(), roles=frozenset({"user"})
        )
        limits = await QuotaPolicies(session).limits_for(dana_principal)
    assert [(limit.subject, limit.policy) for limit in limits] == [
        ("user:dana@example.com", QuotaPolicy(None, 900, None, "degrade")),
        ("team:legal", QuotaPolicy(None, None, 10**6, "reject")),
        ("global", QuotaPolicy(1000, None, None, "reject")),
    ]


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_DATABASE_URL", raising=False)
    return tmp_path


def test_cli_quota_set_and_list(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--user", "erin@example.com", "--team", "support"]) == 0
    capsys.readouterr()
    assert main(["quota", "set", "--user", "erin@example.com", "--rpm", "30", "--tokens-per-day", "5000"]) == 0
    assert "rpm=30" in capsys.readouterr().out
    assert main(["quota", "set", "--team", "support", "--tokens-per-month", "90000", "--on-limit", "degrade"]) == 0
    assert main(["quota", "set", "--team", "ghosts", "--rpm", "1"]) != 0
    capsys.readouterr()
    assert main(["quota", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("team") and "on_limit=degrade" in lines[0] and "tokens/month=90000" in lines[0]
    assert lines[1].startswith("user") and "erin@example.com" in lines[1] and "tokens/day=5000" in lines[1]


async def test_service_admits_names_the_limit_degrades_and_settles(runtime: Runtime) -> None:
    await make_key(runtime, "fay@example.com", team="support")
    await make_key(runtime, "gus@example.com", team="support")
    async with runtime.db.transaction() as session:
        policies = QuotaPolicies(session, runtime.audit)
        await policies.set(Actor.cli("ops"), "user", "fay@example.com", PolicyChange(rpm=2))
        await policies.set(Actor.cli("ops"), "user", "gus@example.com", PolicyChange(rpm=1, on_limit="degrade"))
        await policies.set(Actor.cli("ops"), "team", "support", PolicyChange(tokens_per_day=1000))
    limiter = MemoryLimiter()
    quota = QuotaService(runtime.db, limiter)
    fay = Principal(user_id=0, email="fay@example.com", team="support", groups=frozenset(), roles=frozenset())
    gus = Principal(user_id=0, email="gus@example.com", team="support", groups=frozenset(), roles=frozenset())

    estimate = estimate_tokens([ChatMessage("user", "x" * 400)], 200)
    assert estimate == 300
    grant = await quota.admit(fay, "f1", estimate)
    assert grant.headers() == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "60s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "700",
        "x-ratelimit-reset-tokens": f"{grant.window.day_reset_s}s",
    }
    await quota.settle(grant, 120)
    assert limiter.used("team:support", grant.window)[0] == 120
    await quota.admit(fay, "f2", 10)
    with pytest.raises(QuotaExceeded) as info:
        await quota.admit(fay, "f3", 10)
    assert info.value.status == 429 and info.value.code == "quota_exceeded"
    assert "user:fay@example.com is limited to 2 requests per minute" in info.value.message
    assert 0 < info.value.retry_after_s <= 30

    # Gus shares the team budget; his own rpm policy says degrade.
    assert not (await quota.admit(gus, "g1", 10)).degraded
    degraded = await quota.admit(gus, "g2", 10)
    assert degraded.degraded and degraded.limits == ()
    assert "x-ratelimit-degraded" in degraded.headers()
    hal = Principal(user_id=0, email="hal@example.com", team="support", groups=frozenset(), roles=frozenset())
    with pytest.raises(QuotaExceeded, match="team:support is limited to 1000 tokens per day"):
        await quota.admit(hal, "h1", 2000)
    assert limiter.used("team:support", grant.window)[0] == 140  # 120 settled + 10 + 10

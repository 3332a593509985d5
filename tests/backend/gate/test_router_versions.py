"""`router promote | rollback | shadow` is audited the same from the CLI and the admin API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from backend.cli.main import main
from backend.runtime import Runtime
from router.artifacts import bundled_default
from tests.conftest import TEST_GATE, audit_events, make_key

ROUTER_ACTIONS = ("router.promoted", "router.rolled_back", "router.shadow")


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    for name in ("EXPERTGATE_DATABASE_URL", "EXPERTGATE_SECRET_KEY", "EXPERTGATE_ROUTER_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def router_events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["audit", "export", "--format", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [e for e in events if e["action"] in ROUTER_ACTIONS]


def test_each_cli_change_writes_one_event_naming_the_operator(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = bundled_default()
    assert gate is not None
    steps: list[tuple[list[str], str, dict[str, object]]] = [
        (["promote", gate], "router.promoted", {"version": gate, "previous": gate}),
        (["promote", gate], "router.promoted", {"version": gate, "previous": gate}),
        (["rollback"], "router.rolled_back", {"version": gate, "previous": gate}),
        (["shadow", gate], "router.shadow", {"version": gate}),
        (["shadow", "--off"], "router.shadow", {"version": None}),
    ]
    for done, (argv, action, payload) in enumerate(steps, start=1):
        assert main(["router", *argv]) == 0
        events = router_events(capsys)
        assert len(events) == done, argv
        last = events[-1]
        assert (last["action"], last["payload"], last["outcome"], last["status"]) == (action, payload, "ok", 200)
        assert last["channel"] == "cli" and str(last["user_email"]).startswith("cli:")

    # A change the store refuses is not made, and so not recorded.
    assert main(["router", "promote", "gate-nope"]) == 1
    assert "no gate version 'gate-nope'" in capsys.readouterr().err
    assert len(router_events(capsys)) == len(steps)
    assert main(["audit", "verify"]) == 0


async def test_api_and_cli_record_the_same_event_once_each(
    runtime: Runtime, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = runtime.settings
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("EXPERTGATE_EXPERTS_FILE", str(settings.experts_file))
    # The CLI works on the app's store: this test's copy of the test gate's.
    monkeypatch.setenv("EXPERTGATE_ROUTER_DIR", str(settings.router_dir))
    for name in ("EXPERTGATE_DATABASE_URL", "EXPERTGATE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    admin = {"authorization": f"Bearer {await make_key(runtime, 'root@example.com', roles={'admin'})}"}
    gate = TEST_GATE

    async def cli(*argv: str) -> None:
        # main() runs its own event loop: off this test's loop, in a thread.
        assert await asyncio.to_thread(main, ["router", *argv]) == 0

    for api_call, cli_args, action in [
        (("/api/v1/admin/router/promote", {"version": gate}), ("promote", str(gate)), "router.promoted"),
        (("/api/v1/admin/router/promote", {"version": gate}), ("promote", str(gate)), "router.promoted"),
        (("/api/v1/admin/router/rollback", None), ("rollback",), "router.rolled_back"),
        (("/api/v1/admin/router/shadow", {"version": gate}), ("shadow", str(gate)), "router.shadow"),
        (("/api/v1/admin/router/shadow", {"version": None}), ("shadow", "--off"), "router.shadow"),
    ]:
        before = len(await audit_events(runtime, action=action))
        path, body = api_call
        r = await http.post(path, headers=admin, json=body)
        assert r.status_code == 200, r.text
        by_api = (await audit_events(runtime, action=action))[before:]
        assert [e.channel for e in by_api] == ["api"], f"{path}: one event, not {len(by_api)}"

        await cli(*cli_args)
        by_cli = (await audit_events(runtime, action=action))[before + 1 :]
        assert [e.channel for e in by_cli] == ["cli"]
        assert by_cli[0].payload == by_api[0].payload
        assert (by_cli[0].outcome, by_cli[0].status) == (by_api[0].outcome, by_api[0].status)

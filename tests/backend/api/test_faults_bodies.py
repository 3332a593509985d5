"""Malformed and adversarial request bodies (issue 25): at least 500 generated bodies sent
to /v1 while other users' requests run beside them. For each: a clear status (never a
5xx), an error in the OpenAI shape with a stable code, no innocent request affected, and
one audit event per authenticated request."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.runtime import Runtime
from tests.conftest import audit_events, client_as, make_key
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.faults

PATHS = ("/v1/chat/completions", "/v1/route")
BASE: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "how do I reset my password?"}]}

# Values of every JSON type, and strings that have broken parsers, encoders and databases.
ODD_STRINGS = [
    "", " ", "\x00", "\ud800", "a\udfffb", "\ud83d", "\u202e\u202d", "\ufeff", "é" * 3, "🙂" * 50,
    "<script>alert(1)</script>", "'; DROP TABLE messages; --", "../../etc/passwd", "%s%s%n",
    "\\u0000", "a" * 5000, "1" * 64, "\r\n\r\n", "NaN", "null", "{}", "auto\x00",
]  # fmt: skip
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 10**30, -(10**30), 1e308, [], {}, [1, 2], {"a": 1}, [[[]]],
    *ODD_STRINGS,
]  # fmt: skip
FIELDS = ["model", "messages", "stream", "temperature", "max_tokens", "max_completion_tokens",
          "conversation_id", "text", "n", "tools", "response_format", "user"]  # fmt: skip


def _mutated(rng: random.Random) -> dict[str, Any]:
    body = json.loads(json.dumps(BASE))
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(7)
        if kind == 0:
            body[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
        elif kind == 1:
            body.pop(rng.choice(list(body) or ["model"]), None)
        elif kind == 2:
            body["messages"] = [
                {"role": rng.choice(["user", "assistant", "system", "developer", "tool", "", 7, None]),
                 "content": rng.choice(ODD_VALUES)}
                for _ in range(rng.randint(0, 4))
            ]  # fmt: skip
        elif kind == 3:
            parts = [
                rng.choice([{"type": "text", "text": rng.choice(ODD_VALUES)}, {"type": "image_url", "image_url": "x"},
                            {"type": rng.choice(ODD_STRINGS)}, rng.choice(ODD_VALUES)])
                for _ in range(rng.randint(0, 3))
            ]  # fmt: skip
            body["messages"] = [{"role": "user", "content": parts}]
        elif kind == 4:
            body["messages"] = [{"role": "user", "content": rng.choice(ODD_STRINGS) + " what is a refund?"}]
        elif kind == 5:
            body["messages"] = rng.choice(ODD_VALUES)
        else:
            body[rng.choice(ODD_STRINGS)[:20] or "x"] = rng.choice(ODD_VALUES)
    return body


def _raw(rng: random.Random) -> tuple[bytes, str]:
    """Bytes that are not one JSON document, or not UTF-8, or not JSON at all."""
    valid = json.dumps(BASE).encode()
    kind = rng.randrange(9)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))), "application/json"
    if kind == 1:
        return valid[: rng.randint(0, len(valid) - 1)], "application/json"  # cut short
    if kind == 2:
        return valid.replace(b"password", b"pass\xff\xfeword"), "application/json"  # bad UTF-8 inside
    if kind == 3:
        depth = rng.choice([50, 1000, 20000])
        return b"[" * depth + b"]" * depth, "application/json"
    if kind == 4:
        return rng.choice([b"null", b"[]", b"123", b'"text"', b"true", b"{}", b"{", b""]), "application/json"
    if kind == 5:
        return valid.replace(b'"auto"', b"NaN"), "application/json"
    if kind == 6:
        return valid, rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""])
    if kind == 7:
        return valid + b"\x00garbage", "application/json"
    return (
        b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"\\ud800" * 3 + b'"}]}',
        "application/json",
    )


def bodies(n: int, seed: int = 25) -> Iterator[tuple[str, bytes, str]]:
    """``n`` (path, body, content type) cases: two in three structurally wrong JSON, one
    in three raw bytes."""
    rng = random.Random(seed)
    for _ in range(n):
        path = rng.choice(PATHS)
        if rng.random() < 2 / 3:
            body = _mutated(rng)
            try:
                data = json.dumps(body).encode()  # a lone surrogate is written as \ud800
            except ValueError:
                data = json.dumps(body, allow_nan=True).encode()
            yield path, data, "application/json"
        else:
            data, content_type = _raw(rng)
            yield path, data, content_type


async def test_fuzzed_bodies_get_clear_errors_and_hurt_nobody(runtime: Runtime, llm: FakeOpenAI) -> None:
    mallory = await make_key(runtime, "mallory@example.com")
    alice = await make_key(runtime, "alice@example.com")
    cases = list(bodies(520))
    statuses: Counter[int] = Counter()
    innocent: list[int] = []

    async with client_as(runtime, mallory) as fuzz, client_as(runtime, alice) as user:

        async def send(path: str, data: bytes, content_type: str) -> None:
            headers = {"content-type": content_type} if content_type else {}
            r = await fuzz.post(path, content=data, headers=headers)
            statuses[r.status_code] += 1
            assert r.status_code < 500, (path, data[:200], r.status_code, r.text[:300])
            if r.status_code != 200:
                error = r.json()["error"]
                assert isinstance(error["code"], str) and error["code"], r.text
                assert isinstance(error["message"], str) and len(error["message"]) > 5, r.text

        async def ask() -> None:
            r = await user.post("/v1/chat/completions", json=BASE)
            innocent.append(r.status_code)

        for start in range(0, len(cases), 8):  # 8 bad bodies at a time, an innocent request beside them
            await asyncio.gather(*(send(*c) for c in cases[start : start + 8]), ask())

    assert sum(statuses.values()) >= 500
    assert statuses[400] > 100, statuses  # the generator produces mostly broken requests
    assert innocent == [200] * len(innocent), Counter(innocent)
    # Every fuzzed request is one audit event (a refusal, or the chat it became).
    events = await audit_events(runtime, user_email="mallory@example.com")
    assert len(events) == len(cases), (len(events), len(cases), statuses)
    assert {e.action for e in events} <= {"http.refused", "chat.completion", "chat.route"}


async def test_a_chunked_body_over_the_limit_is_a_413_not_a_400(runtime: Runtime) -> None:
    key = await make_key(runtime, "ana@example.com")

    async def chunks() -> Any:
        for _ in range(40):
            yield b" " * 50_000  # 2 MB, no content-length

    async with client_as(runtime, key) as c:
        r = await c.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    (event,) = await audit_events(runtime, user_email="ana@example.com")
    assert (event.action, event.status) == ("http.refused", 413)


async def test_a_body_that_does_not_parse_is_401_for_a_stranger_and_audited_for_a_user(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    r = await http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401  # authentication first: a stranger learns nothing of the body
    assert (await http.get("/v1/no-such-thing")).status_code == 401
    key = await make_key(runtime, "ana@example.com")
    async with client_as(runtime, key) as c:
        r = await c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        r = await c.get("/v1/no-such-thing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await c.post("/v1/chat/completions", json={**BASE, "stream": "yes"})
        assert r.status_code == 400
    events = await audit_events(runtime, user_email="ana@example.com")
    assert [(e.action, e.status) for e in events] == [
        ("http.refused", 400),
        ("http.refused", 404),
        ("http.refused", 400),
    ]

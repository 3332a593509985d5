"""Answer quality of expertgate on the staff questions in bench/data/answers/ (issue 22).

Each question is asked through ``/v1/chat/completions`` with ``model`` set to its expert
(and, with ``--routed``, once more as ``auto``). Per expert and overall it reports:

- retrieval hit@5: a gold document among the first five ``expertgate.citations``
  (matched by file name: a citation's ``source`` is the document's path);
- key-fact accuracy: the share of key facts the answer states, after normalising case,
  whitespace, Markdown marks, thousands separators, "percent" and the number words
  one..twenty (so "two business days" states "2 business days");
- answers that state every key fact;
- when responses carry ``expertgate.grounding``: the share of the claims it judged that
  it found unsupported, pooled over answers (``checked * (1 - score)`` each), else null.

By default the runner starts its own ``expertgate serve`` on the embedded default (a temp
data dir, ``expertgate ingest --samples``, the bundled model). ``--base-url`` and
``--api-key`` point it at a running one instead. ``--fake-wrong`` points every expert at a
small OpenAI-compatible server in this process that answers each question with its key
facts made wrong (other numbers and durations, other names), so a working evaluation must
score it near 0 on key facts while retrieval, which does not involve the model, holds.

    .venv/bin/python -m bench.answer_eval [--limit 20] [--experts code,legal] [--routed]
    .venv/bin/python -m bench.answer_eval --fake-wrong
    .venv/bin/python -m bench.answer_eval --base-url http://127.0.0.1:8000 --api-key eg_...

Writes bench/results/answer_eval_<label>.json (or ``--out``) and prints a table. Exits 0
when every question was asked, whatever the scores; 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import yaml

from bench.hardening import BIN, base_env, cli
from bench.load.servers import Server, free_port, spawn, wait_ready, write_experts_file

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "answers"
RESULTS = ROOT / "bench" / "results"
EXPERTS = ("code", "legal", "support")
HIT_AT = 5
USER = "answer-eval@example.com"
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]


# -- the data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One row of bench/data/answers/<expert>.jsonl; each key fact is its spellings."""

    id: str
    expert: str
    question: str
    gold_sources: tuple[str, ...]
    key_facts: tuple[tuple[str, ...], ...]


def load(experts: Sequence[str], limit: int | None, skip: int = 0) -> list[Question]:
    """``limit`` rows (all when None) of each expert's file after its first ``skip``, in
    file order (``--skip`` keeps a part of the set unseen while tuning on another)."""
    out: list[Question] = []
    for expert in experts:
        lines = [ln for ln in (DATA / f"{expert}.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
        for line in lines[skip:][:limit]:
            raw = json.loads(line)
            facts = tuple((f,) if isinstance(f, str) else tuple(f["any"]) for f in raw["key_facts"])
            out.append(Question(raw["id"], raw["expert"], raw["question"], tuple(raw["gold_sources"]), facts))
    return out


# -- scoring -----------------------------------------------------------------------

_WORD_NUMBER = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PERCENT = re.compile(r"(\d)\s*(?:%|\bper ?cent\b)")


def normalise(text: str) -> str:
    """Lower case; Markdown emphasis and code ticks dropped; "2,000" -> "2000";
    "5 percent" -> "5%"; number words one..twenty -> digits; whitespace runs -> one space."""
    text = text.lower().replace("*", "").replace("`", "")
    text = _THOUSANDS.sub("", text)
    text = _WORD_NUMBER.sub(lambda m: str(NUMBER_WORDS.index(m.group(1))), text)
    text = _PERCENT.sub(r"\1%", text)
    return " ".join(text.split())


def states(answer: str, spellings: Sequence[str]) -> bool:
    """Whether the normalised answer holds one spelling as a whole token run: "3" is not
    stated by "30" or "3.1", "12 months" is by "the last 12 months."."""
    text = normalise(answer)
    for spelling in spellings:
        fact = normalise(spelling)
        if not fact:
            continue
        before = r"(?<!\w)(?<!\d[.,:])" if fact[0].isalnum() else ""
        after = r"(?!\w)(?![.,:]\d)" if fact[-1].isalnum() else ""
        if re.search(before + re.escape(fact) + after, text):
            return True
    return False


def document_name(source: str) -> str:
    """A citation's ``source`` (a path, maybe with ", lines 3-9") as a file name."""
    return PurePosixPath(source.split(", ")[0].replace("\\", "/")).name


@dataclass
class Outcome:
    """What one question got back and how it scored."""

    id: str
    expert: str
    mode: str  # "named" (model = the expert) or "routed" (model = auto)
    status: int
    error: str | None
    routed_to: str | None
    seconds: float
    cited: list[str]  # file names of the first HIT_AT citations, in order
    hit: bool
    facts_total: int
    facts_stated: int
    missing: list[str]
    grounding_checked: int | None  # claims judged; None: the response carried no grounding
    grounding_score: float | None  # share of judged claims supported; None: none judged
    grounding_spans: int | None  # unsupported spans (one claim may hold several)
    answer: str = field(repr=False)


def score(q: Question, mode: str, status: int, body: dict[str, Any], seconds: float) -> Outcome:
    eg = body.get("expertgate") or {}
    text = body["choices"][0]["message"]["content"] if status == 200 else ""
    error = None if status == 200 else str((body.get("error") or {}).get("code") or status)
    cited = [document_name(str(c["source"])) for c in (eg.get("citations") or [])[:HIT_AT]]
    stated = [states(text, f) for f in q.key_facts]
    grounding = eg.get("grounding")
    return Outcome(
        id=q.id,
        expert=q.expert,
        mode=mode,
        status=status,
        error=error,
        routed_to=eg.get("expert"),
        seconds=round(seconds, 2),
        cited=cited,
        hit=any(name in q.gold_sources for name in cited),
        facts_total=len(q.key_facts),
        facts_stated=sum(stated),
        missing=[f[0] for f, ok in zip(q.key_facts, stated, strict=True) if not ok],
        grounding_checked=None if grounding is None else int(grounding.get("checked") or 0),
        grounding_score=None if grounding is None else grounding.get("score"),
        grounding_spans=None if grounding is None else len(grounding.get("unsupported") or []),
        answer=text,
    )


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Rates over ``outcomes``; an unanswered question counts as a miss with no facts."""
    n = len(outcomes)
    facts = sum(o.facts_total for o in outcomes)
    grounded = [o for o in outcomes if o.grounding_checked is not None]
    judged = [o for o in grounded if o.grounding_score is not None and o.grounding_checked]
    checked = sum(o.grounding_checked or 0 for o in judged)
    # A claim is supported or not; the score is the supported share of an answer's claims.
    unsupported = sum((o.grounding_checked or 0) * (1 - (o.grounding_score or 0.0)) for o in judged)
    took = [o.seconds for o in outcomes if o.status == 200]
    routed = [o for o in outcomes if o.mode == "routed"]
    return {
        "questions": n,
        "answered": sum(1 for o in outcomes if o.status == 200),
        "errors": sorted({o.error for o in outcomes if o.error}),
        "retrieval_hit_at_5": round(sum(o.hit for o in outcomes) / n, 3) if n else None,
        "key_facts": facts,
        "key_fact_accuracy": round(sum(o.facts_stated for o in outcomes) / facts, 3) if facts else None,
        "answers_with_all_key_facts": sum(1 for o in outcomes if o.facts_stated == o.facts_total),
        "answers_with_all_key_facts_share": round(sum(1 for o in outcomes if o.facts_stated == o.facts_total) / n, 3)
        if n
        else None,
        "grounding": {
            "answers_with_grounding": len(grounded),
            "claims_checked": checked,
            "claims_unsupported": round(unsupported),
            "unsupported_spans": sum(o.grounding_spans or 0 for o in grounded),
            "unsupported_share": round(unsupported / checked, 3) if checked else None,
        },
        "routing_accuracy": round(sum(o.routed_to == o.expert for o in routed) / len(routed), 3) if routed else None,
        "seconds_per_answer_p50": round(statistics.median(took), 2) if took else None,
    }


# -- asking ------------------------------------------------------------------------


async def ask_all(
    base_url: str, key: str, jobs: list[tuple[Question, str]], concurrency: int, timeout_s: float
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s) as client:

        async def one(q: Question, mode: str) -> Outcome:
            nonlocal done
            body = {
                "model": q.expert if mode == "named" else "auto",
                "messages": [{"role": "user", "content": q.question}],
            }
            async with gate:
                started = time.perf_counter()
                try:
                    r = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
                    status, data = r.status_code, r.json()
                except (httpx.HTTPError, ValueError) as exc:  # recorded as this question's failure
                    status, data = 599, {"error": {"code": type(exc).__name__}}
                outcome = score(q, mode, status, data, time.perf_counter() - started)
            done += 1
            print(
                f"  [{done}/{len(jobs)}] {q.id} {mode}: {outcome.facts_stated}/{outcome.facts_total} facts, "
                f"hit={outcome.hit}, {outcome.seconds:.1f}s{'' if outcome.error is None else ' ' + outcome.error}",
                file=sys.stderr,
                flush=True,
            )
            return outcome

        return list(await asyncio.gather(*(one(q, m) for q, m in jobs)))


# -- the fake model that answers wrongly -------------------------------------------

_DIGITS = re.compile(r"\d+")
_WRONG_NAMES = ("the Zeta Board", "Fridays", "the Orion desk", "XLSX", "the night shift")


def wrong_answer(q: Question, salt: int = 0) -> str:
    """An answer to ``q`` that states none of its key facts: each fact's numbers moved
    (12 months -> 19 months), a fact without numbers replaced by a wrong name. Every
    sentence cites [1], so a grounding check has claims to judge."""

    def bump(m: re.Match[str]) -> str:
        n = int(m.group())
        return str(n + 7 + salt if n < 50 else n * 3 + 11 + salt)

    wrong = []
    for i, spellings in enumerate(q.key_facts):
        fact = spellings[0]
        wrong.append(_DIGITS.sub(bump, fact) if _DIGITS.search(fact) else _WRONG_NAMES[(i + salt) % len(_WRONG_NAMES)])
    sentences = [f"According to the handbook, the answer is {wrong[0]} [1]."]
    sentences += [f"Note also that it is {w} in this case [1]." for w in wrong[1:]]
    sentences.append("The limit was raised to 997 days in 2019 [1].")
    text = " ".join(sentences)
    if salt < 5 and any(states(text, f) for f in q.key_facts):
        return wrong_answer(q, salt + 1)
    return text


class FakeWrong:
    """An OpenAI-compatible server (stdlib, one thread per request) that answers each
    known question with ``wrong_answer``; the question is found in the request's messages."""

    def __init__(self, questions: Sequence[Question]) -> None:
        # Longest first, so a question that contains another is matched as itself.
        self._answers = sorted(((q.question, wrong_answer(q)) for q in questions), key=lambda p: -len(p[0]))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def answer(self, messages: list[dict[str, Any]]) -> str:
        prompt = "\n".join(
            m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content")) for m in messages
        )
        for question, text in self._answers:
            if question in prompt:
                return text
        return "It takes 997 days and needs approval from the Zeta Board [1]."

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                models = {"object": "list", "data": [{"id": "fake-wrong", "object": "model", "owned_by": "bench"}]}
                self._send(200, json.dumps(models).encode(), "application/json")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                text = fake.answer(body.get("messages") or [])
                words = text.split(" ")
                usage = {"prompt_tokens": 100, "completion_tokens": len(words), "total_tokens": 100 + len(words)}
                head = {"id": "fake-wrong-1", "created": int(time.time()), "model": body.get("model", "fake-wrong")}
                if not body.get("stream"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    reply = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
                    self._send(200, json.dumps(reply).encode(), "application/json")
                    return
                events = []
                deltas: list[tuple[dict[str, str], str | None]] = [({"role": "assistant", "content": ""}, None)]
                deltas += [({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
                deltas.append(({}, "stop"))
                for delta, finish in deltas:
                    chunk = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
                    events.append(f"data: {json.dumps(chunk)}\n\n")
                if (body.get("stream_options") or {}).get("include_usage"):
                    tail = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    events.append(f"data: {json.dumps(tail)}\n\n")
                events.append("data: [DONE]\n\n")
                self._send(200, "".join(events).encode(), "text/event-stream")

        return Handler

    def __enter__(self) -> FakeWrong:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


# -- the server under test ---------------------------------------------------------


@contextlib.contextmanager
def embedded(fake_port: int | None, quote_first: bool = True) -> Iterator[tuple[str, str]]:
    """``expertgate serve`` on the embedded default in a temp dir, the samples ingested
    and a user key with quotas that never refuse; yields (base URL, key). With
    ``fake_port`` every expert's LLM is the fake at that port (write_experts_file)."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = base_env(workdir)
        if fake_port is not None:
            write_experts_file(workdir, fake_port)
            env |= {"EXPERTGATE_EXPERTS_FILE": str(workdir / "experts.yaml"), "STUB_API_KEY": "sk-fake"}
        elif not quote_first:  # the shipped experts, the model's own answers (issue 22's "before")
            spec = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
            spec["defaults"]["grounding"] = {**spec["defaults"].get("grounding", {}), "quote_first": False}
            (workdir / "experts.yaml").write_text(yaml.safe_dump(spec))
            env |= {"EXPERTGATE_EXPERTS_FILE": str(workdir / "experts.yaml")}
        cli(env, "ingest", "--samples")
        key = cli(env, "keys", "create", "--user", USER).strip().splitlines()[-1]
        cli(env, "quota", "set", "--user", USER, "--rpm", "100000000", "--tokens-per-day", "1000000000000")
        port = free_port()
        server: Server = spawn(
            "expertgate", [str(BIN / "expertgate"), "serve", "--port", str(port)], port, workdir, env
        )
        try:
            wait_ready(server, "/readyz", 300)
            yield f"http://127.0.0.1:{port}", key
        finally:
            server.stop()


# -- the command -------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    head = f"{'mode':<7} {'expert':<8} {'n':>4} {'answered':>8} {'hit@5':>6} {'facts':>6} {'all facts':>9} {'unsupported':>11}"
    lines = [head, "-" * len(head)]
    for mode, parts in report["modes"].items():
        for name, s in [*parts["experts"].items(), ("overall", parts["overall"])]:
            share = s["grounding"]["unsupported_share"]
            lines.append(
                f"{mode:<7} {name:<8} {s['questions']:>4} {s['answered']:>8} {s['retrieval_hit_at_5']:>6.3f} "
                f"{s['key_fact_accuracy']:>6.3f} {s['answers_with_all_key_facts']:>4} ({s['answers_with_all_key_facts_share']:.2f}) "
                f"{'n/a' if share is None else f'{share:.3f}':>11}"
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="answer_eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base-url", help="a running expertgate (default: start the embedded default here)")
    p.add_argument("--api-key", help="a user's API key for --base-url")
    p.add_argument("--limit", type=int, help="the first N questions of each expert")
    p.add_argument("--skip", type=int, default=0, help="skip each expert's first N questions (default 0)")
    p.add_argument("--experts", default=",".join(EXPERTS), help="comma-separated, of " + ", ".join(EXPERTS))
    p.add_argument("--routed", action="store_true", help="also ask every question with model=auto")
    p.add_argument("--fake-wrong", action="store_true", help="every expert answered by a fake model that is wrong")
    p.add_argument(
        "--no-quote-first", action="store_true", help="the bundled model's own answers (experts' quote_first off)"
    )
    p.add_argument("--label", help="names the result file (default: bundled, fake_wrong or external)")
    p.add_argument("--out", type=Path, help="result file (default: bench/results/answer_eval_<label>.json)")
    p.add_argument("--concurrency", type=int, default=1, help="questions in flight at once (default 1)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one answer")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    experts = [e.strip() for e in args.experts.split(",") if e.strip()]
    if not experts or any(e not in EXPERTS for e in experts):
        p.error(f"--experts: choose from {', '.join(EXPERTS)}")
    if args.base_url and not args.api_key:
        p.error("--base-url needs --api-key")
    if args.base_url and args.fake_wrong:
        p.error("--fake-wrong starts its own expertgate; drop --base-url")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    label = args.label or ("fake_wrong" if args.fake_wrong else "external" if args.base_url else "bundled")
    out: Path = args.out or RESULTS / f"answer_eval_{label}.json"
    questions = load(experts, args.limit, args.skip)
    modes = ["named", "routed"] if args.routed else ["named"]
    jobs = [(q, m) for m in modes for q in questions]

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.base_url:
            base_url, key = args.base_url, args.api_key
        else:
            fake = stack.enter_context(FakeWrong(questions)) if args.fake_wrong else None
            print("starting expertgate (embedded default, samples ingested) ...", file=sys.stderr, flush=True)
            port = None if fake is None else fake.port
            base_url, key = stack.enter_context(embedded(port, quote_first=not args.no_quote_first))
        outcomes = asyncio.run(ask_all(base_url, key, jobs, args.concurrency, args.timeout))
    took = time.monotonic() - started

    report: dict[str, Any] = {
        "label": label,
        "server": args.base_url or "embedded default started by the runner (SQLite, samples ingested)",
        "model": "fake-wrong (answers with each question's key facts made wrong)"
        if args.fake_wrong
        else "as configured on the server"
        if args.base_url
        else "SmolLM2-135M-Instruct (bundled, llama.cpp)",
        "experts": experts,
        "limit_per_expert": args.limit,
        "concurrency": args.concurrency,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "seconds_total": round(took, 1),
        "modes": {
            mode: {
                "experts": {e: summary([o for o in outcomes if o.mode == mode and o.expert == e]) for e in experts},
                "overall": summary([o for o in outcomes if o.mode == mode]),
            }
            for mode in modes
        },
        "rows": [{**asdict(o), "answer": o.answer[:800]} for o in outcomes],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(report))
    print(
        f"\n{len(jobs)} questions in {took:.0f} s; wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

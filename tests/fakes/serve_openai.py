"""Run the fake OpenAI server as a process, for the browser e2e run and for demos.

    python -m tests.fakes.serve_openai --experts-out /tmp/experts.yaml

prints its ``api_base`` on the first line of stdout once it listens, writes an
experts.yaml (the shipped one, every expert pointed at this server) for
``EXPERTGATE_EXPERTS_FILE``, and serves until it gets SIGTERM or SIGINT.

Each expert answers with a fixed Markdown reply of its own (picked from the expert's
system prompt), so pages and screenshots are deterministic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.http_server import wait_for_signal
from tests.fakes.openai_server import FakeOpenAI, Reply

ROOT = Path(__file__).resolve().parents[2]

REPLIES = {
    "code": (
        "Squash them with an interactive rebase [1]:\n\n"
        "```bash\ngit rebase -i HEAD~3\n# mark the last two commits 'squash'\n"
        "git push --force-with-lease\n```\n\n"
        'Model output is shown as text, never as markup: <img src=x onerror="window.__xss=1">'
    ),
    "legal": (
        "Our MSA caps liability at **twelve months of fees** [1]. Changing the cap needs "
        "sign-off; ask legal@harborlight.example before you agree to anything else."
    ),
    "support": (
        "To get back into Beacon:\n\n1. Open **Settings → Security**.\n"
        "2. Choose *Reset password* and follow the e-mail link.\n"
        "3. Sign in again on the mobile app [1]."
    ),
    "general": "Happy to help. Here is a short, general answer.",
}

# A phrase of each expert's system prompt in experts/experts.yaml.
MARKERS = {
    "engineering expert": "code",
    "legal and compliance": "legal",
    "customer support": "support",
}


def expert_of(body: dict[str, Any]) -> str:
    system = " ".join(
        str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system"
    )
    return next((name for phrase, name in MARKERS.items() if phrase in system), "general")


class ExpertReplies(FakeOpenAI):
    """The fake server, answering each expert with its own reply (one request at a time)."""

    async def _chat(self, request: Request) -> Response:
        # Starlette caches the parsed body, so the base class reads it again for free.
        self.script(Reply(REPLIES[expert_of(await request.json())]))
        return await super()._chat(request)


def write_experts(path: Path, api_base: str) -> None:
    raw = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
    raw["defaults"]["llm"] = {"model": "openai/fake-model", "api_base": api_base}
    raw["defaults"]["timeout_s"] = 10
    raw["defaults"]["first_token_timeout_s"] = 10  # must not exceed timeout_s
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts-out", type=Path, help="write an experts.yaml using this server")
    args = parser.parse_args(argv)
    server = ExpertReplies().start()
    if args.experts_out:
        write_experts(args.experts_out, server.api_base)
    print(server.api_base, flush=True)
    wait_for_signal()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

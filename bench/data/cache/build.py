"""Assemble the cache replay questions from families.yaml (written for this project):
questions.jsonl (one per line: id, domain, family, intent, template, text) and
near_miss.jsonl (pairs of ids: the same wording of one family with two subjects, which
must never share an answer). Deterministic; run from the repository root:

    .venv/bin/python -m bench.data.cache.build
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def build() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    families = yaml.safe_load((HERE / "families.yaml").read_text(encoding="utf-8"))["families"]
    questions: list[dict[str, object]] = []
    pairs: list[dict[str, object]] = []
    for name, family in families.items():
        ids: dict[tuple[int, int], str] = {}
        for s, subject in enumerate(family["subjects"]):
            for t, template in enumerate(family["templates"]):
                qid = f"{name}.{s}.{t}"
                ids[s, t] = qid
                questions.append(
                    {"id": qid, "domain": family["domain"], "family": name, "intent": f"{name}.{s}",
                     "template": t, "text": template.replace("{x}", str(subject))}
                )  # fmt: skip
        for (s1, s2), t in itertools.product(itertools.combinations(range(len(family["subjects"])), 2),
                                             range(len(family["templates"]))):  # fmt: skip
            pairs.append({"a": ids[s1, t], "b": ids[s2, t], "family": name})
    return questions, pairs


def main() -> None:
    questions, pairs = build()
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(q) + "\n" for q in questions)
    with (HERE / "near_miss.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(p) + "\n" for p in pairs)
    intents = len({q["intent"] for q in questions})
    print(f"{len(questions)} questions in {intents} paraphrase groups, {len(pairs)} near-miss pairs")


if __name__ == "__main__":
    main()

"""Where the safety check's decisive patterns match (router/safety/rules.py ``DECISIVE``,
and ``MATERIAL``, which reads only the material pasted into a request and documents).

A decisive pattern flags a text on its own, so it must match no benign text at all. This
counts, per pattern, the texts it matches in each set (a ``MATERIAL`` pattern reads a
request's pasted part, :func:`router.safety.content.pasted`, and a document whole):

- ``benign_ours``: every hard benign row we wrote (both sides of the split, and the rows
  in ``pending/`` that no model trains on yet);
- ``router_examples``: every example of the router's training and held-out data;
- ``sample_documents``: the shipped sample corpora (retrieval/samples), which the
  document scanner reads with the same patterns;
- ``public_benign``: the public benign requests of ``bench/safety_public.py`` (the
  router's public dev set), when ``--public`` is given;
- ``attacks_train`` / ``attacks_held_out``: our attacks on each side of the safety split;
- ``public_jailbreaks``: the in-the-wild jailbreak prompts, when ``--public`` is given;
- ``bipia_injected`` / ``bipia_clean``: BIPIA's e-mails with and without an injected
  instruction, when ``--public`` is given.

The benign counts are the test: any match there is a false positive the model could not
undo. The attack counts say how much a pattern adds (the model catches many of them
anyway: ``bench/safety_eval.py`` measures the whole check).

    python -m bench.safety_decisive [--public /work/safety-public]

Writes bench/results/safety_decisive.json, with the benign texts matched (ours only).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router.dataset import SEED_DIR
from router.safety import rules
from router.safety.content import pasted
from router.safety.data import BENIGN, DATA_DIR, PENDING, load_rows, load_split, plan_files

OUT = Path(__file__).resolve().parent / "results" / "safety_decisive.json"
SAMPLES = Path(__file__).resolve().parents[1] / "retrieval" / "samples"


def _router_texts() -> list[str]:
    texts = []
    for path in sorted(SEED_DIR.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def _documents() -> list[str]:
    return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(SAMPLES.rglob("*")) if p.is_file()]


def _public(folder: Path | None, name: str) -> list[str]:
    if folder is None:
        return []
    with (folder / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


DOCUMENTS = "sample_documents"  # all material


def _matched(text: str, whole_material: bool) -> set[str]:
    material = text if whole_material else pasted(text)
    return set(rules.decisive(text)) | set(rules.in_material(material) if material else ())


def count(sets: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {name: len(texts) for name, texts in sets.items()}, "patterns": {}}
    matched = {name: [_matched(t, name == DOCUMENTS) for t in texts] for name, texts in sets.items()}
    for name in [*rules.DECISIVE, *rules.MATERIAL, "any"]:
        row: dict[str, Any] = {}
        for set_name, texts in sets.items():
            hit = [t for t, m in zip(texts, matched[set_name], strict=True) if (m if name == "any" else name in m)]
            row[set_name] = len(hit)
            if set_name in ("benign_ours", "router_examples", DOCUMENTS, "bipia_clean") and hit:
                row[f"{set_name}_texts"] = hit[:20]
        out["patterns"][name] = row
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", type=Path, default=None, help="the folder bench.safety_public wrote")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    split = load_split()
    pending = [r for path in plan_files(DATA_DIR / PENDING) for r in load_rows(path)]
    ours = [r for r in split.train + split.test if r.cell != "router"]
    sets = {
        "benign_ours": [r.text for r in ours + pending if r.label == BENIGN],
        "router_examples": _router_texts(),
        DOCUMENTS: _documents(),
        "public_benign": _public(args.public, "public_benign_requests"),
        "attacks_train": [r.text for r in split.train if r.label != BENIGN and not r.derived],
        "attacks_held_out": [r.text for r in split.test if r.label != BENIGN],
        "attacks_pending": [r.text for r in pending if r.label != BENIGN],
        "public_jailbreaks": _public(args.public, "in_the_wild_jailbreaks"),
        "bipia_injected": _public(args.public, "bipia_email_injected"),
        "bipia_clean": _public(args.public, "bipia_email_clean"),
    }
    result = count(sets)
    for name, row in result["patterns"].items():
        print(f"{name:24s} " + "  ".join(f"{k} {v}" for k, v in row.items() if not k.endswith("_texts")))
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The shipped routing data against its coverage plan (router/data/TAXONOMY.md)."""

from __future__ import annotations

import json
import re
from collections import Counter

from router.dataset import SEED_DIR, SEED_FILES, load_examples, load_jsonl

EXPERTS = ("code", "legal", "support", "general")
PLAN = (SEED_DIR / "TAXONOMY.md").read_text(encoding="utf-8")
CELLS = re.findall(r"^- ([clsg]\d+) ", PLAN, flags=re.MULTILINE)
EVERY_DOMAIN, _, ONE_DOMAIN = PLAN.partition("## Styles of one domain")
STYLES = re.findall(r"^- `(\w+)`:", EVERY_DOMAIN, flags=re.MULTILINE)
DOMAIN_STYLES = dict(re.findall(r"^- `(\w+)` \((\w+)\):", ONE_DOMAIN, flags=re.MULTILINE))
DOMAIN_OF = {"c": "code", "l": "legal", "s": "support", "g": "general"}


def broad_rows() -> list[dict[str, str]]:
    rows = []
    for path in sorted((SEED_DIR / "broad").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def test_the_plan_parses() -> None:
    assert len(CELLS) >= 30 and len(set(CELLS)) == len(CELLS)
    assert {"question", "title", "query", "command", "chat", "long", "typo", "nonnative", "other"} <= set(STYLES)
    assert set(DOMAIN_STYLES.values()) <= set(DOMAIN_OF.values()) and not set(DOMAIN_STYLES) & set(STYLES)


def test_every_domain_has_2500_distinct_examples() -> None:
    counts = Counter(e.domain for e in load_examples(SEED_FILES))
    assert set(counts) == set(EXPERTS)
    assert min(counts.values()) >= 2500, counts


def test_every_cell_and_every_style_is_written_for() -> None:
    rows = broad_rows()
    cells = Counter(r["cell"] for r in rows)
    thin = {c: cells[c] for c in CELLS if cells[c] < 100}
    assert not thin, f"cells of TAXONOMY.md with fewer than 100 rows: {thin}"
    for row in rows:
        assert row["style"] in STYLES or DOMAIN_STYLES.get(row["style"]) == row["domain"], row
        planned = DOMAIN_OF[row["cell"][0]] if row["cell"][0] in DOMAIN_OF and row["cell"][1:].isdigit() else None
        assert planned in (None, row["domain"]), row  # a cell belongs to one domain; bX rows are boundary cases
    for domain in EXPERTS:
        styles = Counter(r["style"] for r in rows if r["domain"] == domain)
        own = {style for style, d in DOMAIN_STYLES.items() if d == domain}
        assert set(STYLES) | own == set(styles), (domain, styles)
        boundary = sum(1 for r in rows if r["domain"] == domain and r["cell"].startswith("b"))
        assert boundary >= 50, (domain, boundary)


def test_no_held_out_text_is_trained_on() -> None:
    held = {e.text.strip().lower() for e in load_jsonl(SEED_DIR / "test.jsonl")}
    held |= {json.loads(line)["text"].strip().lower() for line in (SEED_DIR / "conversations.jsonl").open() if line.strip()}
    trained = {e.text.strip().lower() for e in load_examples(SEED_FILES)}
    assert not held & trained, sorted(held & trained)[:5]

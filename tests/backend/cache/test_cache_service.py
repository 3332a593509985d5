"""The response cache below the pipeline (backend/cache/): keys, eligibility, the
in-process store (exact, semantic, TTL, bound, variants) and the service's checks
(index versions, ACL of cited documents, no-cache), on a migrated SQLite database."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert

from backend.cache.keys import (
    acl_variant,
    carries_other_details,
    lookup_skip,
    normalise,
    scope_key,
    store_skip,
    swaps_a_word,
    text_key,
)
from backend.cache.service import Delivered, ResponseCache
from backend.cache.store import MemoryStore, unit
from backend.cache.types import CachedAnswer, CachedPassage, CacheStatus, MatchKind
from backend.db.models import Document
from backend.db.session import Database
from backend.knowledge.types import Retrieval, RetrievedPassage
from experts.registry import ExpertRegistry, RegistryError
from experts.types import Usage

DIM = 8


def registry(**legal: object) -> ExpertRegistry:
    base = {"llm": {"model": "openai/m", "api_base": "http://x"}, "system_prompt": "You answer."}
    return ExpertRegistry.from_mapping(
        {
            "experts": {
                "legal": {**base, "description": "law and contracts", "index": "legal",
                          "cache": {"enabled": True, "threshold": 0.9, "ttl_s": 60, **legal}},
                "general": {**base, "description": "everything else"},
            }
        }
    )  # fmt: skip


def vec(*weights: float) -> np.ndarray:
    row = np.zeros(DIM, dtype=np.float32)
    row[: len(weights)] = weights
    return unit(row)


def answer(request_id: str, *, expires_at: float = 1e12, stored_at: float = 0.0) -> CachedAnswer:
    return CachedAnswer(
        request_id=request_id, expert="legal", question="q", text=f"answer {request_id}", upstream_model="m",
        usage=Usage(10, 20), passages=(), domains=(), index_versions=(), grounding=None, stored_at=stored_at,
        expires_at=expires_at,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Versions:
    """The knowledge service's index versions as the cache reads them (moved by tests)."""

    def __init__(self) -> None:
        self.current = {"legal": "v1"}

    async def get(self, domain: str) -> str | None:
        return self.current.get(domain)


def passage(number: int, document_id: int) -> RetrievedPassage:
    return RetrievedPassage(
        number=number, chunk_id=100 + number, document_id=document_id, domain="legal", title="MSA > Cap",
        source="upload/msa.md", location="lines 1-4", text="The cap is 12 months of fees.", snippet="The cap",
        score=0.9,
    )  # fmt: skip


def delivered(request_id: str, retrieval: Retrieval, **changes: object) -> Delivered:
    fields: dict[str, object] = dict(
        request_id=request_id, decided="legal", expert="legal", text="Capped at 12 months of fees [1].",
        upstream_model="m", usage=Usage(30, 12), fallbacks=0, finish_reason="stop", held=False,
        retrieval=retrieval, grounding={"score": 1.0, "action": "none"} if retrieval.passages else None, output=None,
    )  # fmt: skip
    fields.update(changes)
    return Delivered(**fields)  # type: ignore[arg-type]


# -- keys and eligibility ---------------------------------------------------------------
def test_exact_key_ignores_case_spacing_and_trailing_punctuation() -> None:
    assert normalise("  How do I reset   my password?! ") == "how do i reset my password"
    assert text_key("How do I reset my password?") == text_key("how do i reset my password")
    assert text_key("how do I reset my password") != text_key("how do I reset my API token")


def test_scope_covers_model_parameters_index_version_and_encoder() -> None:
    spec = registry().get("legal")
    base = dict(temperature=None, max_tokens=None, index_version="v1", encoder="minilm")
    key = scope_key(spec, **base)  # type: ignore[arg-type]
    # The expert's own defaults asked for explicitly are the same request.
    assert scope_key(spec, **{**base, "temperature": spec.params.temperature}) == key  # type: ignore[arg-type]
    for change in ({"temperature": 1.2}, {"max_tokens": 7}, {"index_version": "v2"}, {"encoder": "other"}):
        assert scope_key(spec, **{**base, **change}) != key  # type: ignore[arg-type]
    other_model = spec.model_copy(update={"llm": spec.llm.model_copy(update={"model": "openai/bigger"})})
    assert scope_key(other_model, **base) != key  # type: ignore[arg-type]


def test_only_first_turns_without_pii_are_looked_up() -> None:
    assert lookup_skip(conversation_id=None, roles=["user"], pii=False) is None
    assert lookup_skip(conversation_id="c1", roles=["user"], pii=False) == "not_first_turn"
    assert lookup_skip(conversation_id=None, roles=["user", "assistant", "user"], pii=False) == "not_first_turn"
    assert lookup_skip(conversation_id=None, roles=["system", "user"], pii=False) == "not_first_turn"
    assert lookup_skip(conversation_id=None, roles=["user"], pii=True) == "pii"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expert": "general", "fallbacks": 1}, "fallback"),
        ({"finish_reason": "length"}, "finish_reason"),
        ({"finish_reason": "extractive"}, "finish_reason"),
        ({"held": True}, "review"),
        ({"grounding": {"score": 0.2, "action": "flag"}}, "grounding"),
        ({"grounding": {"score": 0.2, "action": "refuse"}}, "grounding"),
        ({"grounding": None}, "unchecked"),
        ({"output": {"secrets_removed": 1, "instructions_withheld": 0}}, "output_scrubbed"),
        ({"retrieval": Retrieval(degraded="index unavailable")}, "retrieval_degraded"),
    ],
)
def test_only_whole_delivered_approved_answers_are_kept(change: dict[str, object], reason: str) -> None:
    clean = dict(decided="legal", expert="legal", fallbacks=0, finish_reason="stop", held=False,
                 retrieval=Retrieval(passages=(passage(1, 1),)), grounding={"action": "none"},
                 output={"secrets_removed": 0, "instructions_withheld": 0})  # fmt: skip
    assert store_skip(**clean) is None  # type: ignore[arg-type]
    assert store_skip(**{**clean, **change}) == reason  # type: ignore[arg-type]


def test_cache_settings_are_validated_with_the_field_named() -> None:
    assert registry().get("legal").cache.threshold == 0.9
    assert not registry().get("general").cache.enabled  # off unless configured
    with pytest.raises(RegistryError, match=r"experts\.legal\.cache\.threshold"):
        registry(threshold=1.5)
    with pytest.raises(RegistryError, match=r"experts\.legal\.cache\.colour: unknown field"):
        registry(colour="red")


# -- the in-process store -----------------------------------------------------------------
async def test_store_offers_exact_then_semantic_above_the_threshold_only() -> None:
    store = MemoryStore(clock=Clock())
    await store.put("s", "k-reset", "", vec(1, 0), answer("a"), 10)
    await store.put("s", "k-near", "", vec(1, 0.3), answer("b"), 10)  # cos 0.958 to a
    await store.put("s", "k-far", "", vec(0, 1), answer("c"), 10)
    found = await store.find("s", "k-reset", vec(1, 0), 0.9, 4)
    assert [(c.answer.request_id, c.match) for c in found] == [("a", MatchKind.EXACT), ("b", MatchKind.SEMANTIC)]
    found = await store.find("s", "k-other", vec(1, 0.05), 0.99, 4)
    assert [c.answer.request_id for c in found] == ["a"]  # b is below 0.99
    assert await store.find("other-scope", "k-reset", vec(1, 0), 0.9, 4) == []


async def test_store_forgets_answers_after_their_ttl_and_beyond_its_bound() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.put("s", "k1", "", vec(1, 0), answer("a", expires_at=clock.now + 60), 2)
    clock.now += 61
    assert await store.find("s", "k1", vec(1, 0), 0.9, 4) == []
    for i in range(3):
        await store.put("s", f"k{i}", "", vec(1, i), answer(f"n{i}", expires_at=clock.now + 60), 2)
    assert len(store) == 2 and await store.find("s", "k0", None, 0.9, 4) == []  # the oldest went


async def test_answers_for_different_access_are_kept_side_by_side() -> None:
    store = MemoryStore(clock=Clock())
    restricted = answer("with-doc")
    restricted = CachedAnswer(**{**_fields(restricted), "passages": (_cached_passage(frozenset({"legal-team"})),)})
    await store.put("s", "k", acl_variant([frozenset({"legal-team"})]), vec(1), restricted, 10)
    await store.put("s", "k", acl_variant([]), vec(1), answer("without"), 10)
    found = await store.find("s", "k", vec(1), 0.9, 4)
    # The answer citing more passages is offered first; the other is still there.
    assert [c.answer.request_id for c in found] == ["with-doc", "without"]
    await store.put("s", "k", "", vec(1), answer("without-2"), 10)  # same variant: replaced
    assert [c.answer.request_id for c in await store.find("s", "k", vec(1), 0.9, 4)] == ["with-doc", "without-2"]


def _fields(a: CachedAnswer) -> dict[str, object]:
    return {name: getattr(a, name) for name in a.__slots__}  # type: ignore[attr-defined]


def _cached_passage(groups: frozenset[str]) -> CachedPassage:
    return CachedPassage(1, 101, 1, "legal", "MSA", "upload/msa.md", "lines 1-4", "cap", 0.9, groups)


# -- the service ------------------------------------------------------------------------
async def add_document(db: Database, document_id: int, groups: list[str]) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(Document).values(
                id=document_id, domain="legal", source=f"upload/d{document_id}.md", title="d", media_type="text/markdown",
                content_hash=f"{document_id:064d}", size_bytes=1, groups=groups,
            )
        )  # fmt: skip


def lookup_args(groups: frozenset[str] = frozenset(), **changes: object) -> dict[str, object]:
    args: dict[str, object] = dict(
        use=True, conversation_id=None, roles=["user"], pii=False, temperature=None, max_tokens=None,
        encoder="minilm", vector=vec(1, 0), groups=groups,
    )  # fmt: skip
    args.update(changes)
    return args


async def test_a_kept_answer_is_replayed_and_its_acl_is_checked_per_caller(db: Database) -> None:
    await add_document(db, 1, ["legal-team"])
    versions = Versions()
    cache = ResponseCache(MemoryStore(), registry(), db, versions=versions)  # type: ignore[arg-type]
    retrieval = Retrieval(passages=(passage(1, 1),), domains=("legal",), index_versions=(("legal", "v1"),))
    team = frozenset({"legal-team"})
    first = await cache.lookup("legal", "What is the cap?", **lookup_args(team))  # type: ignore[arg-type]
    assert first is not None and first.status is CacheStatus.MISS
    assert await cache.store(first, "What is the cap?", delivered("r1", retrieval)) is None

    hit = await cache.lookup("legal", "what is the cap", **lookup_args(team))  # type: ignore[arg-type]
    assert hit is not None and hit.status is CacheStatus.HIT and hit.hit is not None
    assert hit.hit.answer.request_id == "r1" and hit.hit.match is MatchKind.EXACT
    assert hit.record()["source_request_id"] == "r1" and hit.record()["tokens_saved"] == 42
    # A paraphrase close enough by the router's vector.
    near = await cache.lookup("legal", "the cap is what?", **lookup_args(team, vector=vec(1, 0.1)))  # type: ignore[arg-type]
    assert near is not None and near.hit is not None and near.hit.match is MatchKind.SEMANTIC

    outsider = await cache.lookup("legal", "What is the cap?", **lookup_args(frozenset({"sales"})))  # type: ignore[arg-type]
    assert outsider is not None and outsider.status is CacheStatus.MISS and outsider.rejected == {"forbidden": 1}

    # A publish of the index: a new scope, nothing found.
    versions.current["legal"] = "v2"
    after = await cache.lookup("legal", "What is the cap?", **lookup_args(team))  # type: ignore[arg-type]
    assert after is not None and after.status is CacheStatus.MISS


async def test_a_peer_index_published_since_makes_the_answer_stale(db: Database) -> None:
    await add_document(db, 1, [])
    versions = Versions()
    versions.current["support"] = "s1"
    cache = ResponseCache(MemoryStore(), registry(), db, versions=versions)  # type: ignore[arg-type]
    retrieval = Retrieval(passages=(passage(1, 1),), domains=("legal", "support"),
                          index_versions=(("legal", "v1"), ("support", "s1")))  # fmt: skip
    first = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert first is not None
    await cache.store(first, "q", delivered("r1", retrieval))
    versions.current["support"] = "s2"
    again = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert again is not None and again.status is CacheStatus.MISS and again.rejected == {"stale": 1}


async def test_no_cache_bypasses_the_lookup_but_keeps_the_fresh_answer(db: Database) -> None:
    cache = ResponseCache(MemoryStore(), registry(), db, versions=Versions())  # type: ignore[arg-type]
    bypass = await cache.lookup("legal", "q", **lookup_args(use=False))  # type: ignore[arg-type]
    assert bypass is not None and bypass.status is CacheStatus.BYPASS
    assert await cache.store(bypass, "q", delivered("r1", Retrieval())) is None
    again = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert again is not None and again.status is CacheStatus.HIT
    # An expert with the cache off: no lookup at all.
    assert await cache.lookup("general", "q", **lookup_args()) is None  # type: ignore[arg-type]


async def test_ttl_ends_a_kept_answer(db: Database) -> None:
    clock = Clock()
    cache = ResponseCache(MemoryStore(clock=clock), registry(ttl_s=30), db, versions=Versions(), clock=clock)  # type: ignore[arg-type]
    first = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert first is not None
    await cache.store(first, "q", delivered("r1", Retrieval()))
    clock.now += 29
    hit = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert hit is not None and hit.status is CacheStatus.HIT
    clock.now += 2
    miss = await cache.lookup("legal", "q", **lookup_args())  # type: ignore[arg-type]
    assert miss is not None and miss.status is CacheStatus.MISS


async def test_a_later_turn_is_skipped_and_not_kept(db: Database) -> None:
    cache = ResponseCache(MemoryStore(), registry(), db, versions=Versions())  # type: ignore[arg-type]
    later = await cache.lookup("legal", "q", **lookup_args(conversation_id="c1"))  # type: ignore[arg-type]
    assert later is not None and later.status is CacheStatus.SKIPPED
    assert await cache.store(later, "q", delivered("r1", Retrieval())) == "not_cacheable"


def test_an_answer_repeating_the_askers_own_details_is_not_replayed_to_a_similar_question() -> None:
    asked = "Write an email to my team; mention my employee number 74120 so HR can match it."
    probe = "Write an email to my team; mention my employee number so HR can match it."
    assert carries_other_details(asked, probe, "Hi team, ... (employee number 74120).")
    assert not carries_other_details(asked, probe, "Hi team, the offsite moves to Friday.")
    assert not carries_other_details(asked, asked.lower(), "... 74120 ...")  # the same detail asked again
    assert carries_other_details("Status of project Sandpiper deploys?", "Status of our deploys?", "Sandpiper is green")


async def test_a_semantic_candidate_with_another_askers_details_is_rejected(db: Database) -> None:
    cache = ResponseCache(MemoryStore(), registry(), db, versions=Versions())  # type: ignore[arg-type]
    asked = "Email my team about Friday; mention my employee number 74120."
    first = await cache.lookup("legal", asked, **lookup_args())  # type: ignore[arg-type]
    assert first is not None
    await cache.store(first, asked, delivered("r1", Retrieval(), text="Hi team (74120): Friday it is."))
    probe = await cache.lookup("legal", "Email my team about Friday.", **lookup_args(vector=vec(1, 0.05)))  # type: ignore[arg-type]
    assert probe is not None and probe.status is CacheStatus.MISS and probe.rejected == {"details": 1}


def test_the_pronoun_i_is_no_detail() -> None:
    assert not carries_other_details(
        "How do I reset my password?", "how to reset my password", "I would open Settings."
    )


def test_a_question_with_one_content_word_swapped_is_a_near_miss() -> None:
    # The replay benchmark's wrong hits (bench/results/cache_eighth_session.json).
    assert swaps_a_word("What is the yearly parental leave allowance?", "What is the yearly annual leave allowance?")
    assert swaps_a_word(
        "Rewrite 'we will deliver the report next week' to sound more concise.",
        "Rewrite 'we will deliver the report next week' to sound more formal.",
    )
    assert swaps_a_word("How long do we keep invoices?", "How long do we keep payslips?")
    # Not a swap: the same words, a function word swapped, words only added, or other words.
    assert not swaps_a_word("How do I reset my password?", "how do i reset my password")
    assert not swaps_a_word("How do I reset my password?", "How can I reset my password?")
    assert not swaps_a_word("How do I reset my password?", "How do I reset my password quickly?")
    assert not swaps_a_word("How do I reset my password?", "I forgot my password, what now?")


async def test_a_semantic_candidate_with_a_swapped_word_is_rejected(db: Database) -> None:
    cache = ResponseCache(MemoryStore(), registry(), db, versions=Versions())  # type: ignore[arg-type]
    asked = "What is the yearly parental leave allowance?"
    first = await cache.lookup("legal", asked, **lookup_args())  # type: ignore[arg-type]
    assert first is not None
    await cache.store(first, asked, delivered("r1", Retrieval(), text="Sixteen weeks."))
    near = "What is the yearly annual leave allowance?"
    probe = await cache.lookup("legal", near, **lookup_args(vector=vec(1, 0.05)))  # type: ignore[arg-type]
    assert probe is not None and probe.status is CacheStatus.MISS and probe.rejected == {"swapped_word": 1}
    # The same vector with the question reworded is a hit: only the swap is refused.
    reworded = "How much parental leave do we get each year?"
    hit = await cache.lookup("legal", reworded, **lookup_args(vector=vec(1, 0.05)))  # type: ignore[arg-type]
    assert hit is not None and hit.status is CacheStatus.HIT


async def test_a_semantic_match_for_a_question_with_pasted_material_is_rejected(db: Database) -> None:
    """Two e-mails pasted under the same request are two questions: only the same text
    (an exact match) is replayed."""
    cache = ResponseCache(MemoryStore(), registry(), db, versions=Versions())  # type: ignore[arg-type]
    first_mail = (
        "Summarise this e-mail:\nThe Leeds office moves to the fourth floor on 3 March, desks packed by Harlow."
    )
    other_mail = (
        "Summarise this e-mail:\nThe York office moves to the second floor in April, desks packed by our own team."
    )
    first = await cache.lookup("legal", first_mail, **lookup_args())  # type: ignore[arg-type]
    assert first is not None
    await cache.store(first, first_mail, delivered("r1", Retrieval(), text="The office moves up a floor."))
    probe = await cache.lookup("legal", other_mail, **lookup_args(vector=vec(1, 0.05)))  # type: ignore[arg-type]
    assert probe is not None and probe.status is CacheStatus.MISS and probe.rejected == {"pasted": 1}
    again = await cache.lookup("legal", first_mail, **lookup_args(vector=vec(1, 0.05)))  # type: ignore[arg-type]
    assert again is not None and again.status is CacheStatus.HIT

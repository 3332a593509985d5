"""experts.yaml: the expert registry, validated on load.

Shape (every field is checked; an unknown field is an error naming it)::

    defaults:            # optional, merged under every expert (expert values win)
      llm: {model: openai/smollm2, api_base: local}
    experts:
      code:
        description: "..."
        llm: {model: hosted_vllm/Qwen/Qwen3-30B-A3B, api_base: "http://gpu:8000/v1"}
        ...

``api_base: local`` means the bundled model served by the embedded llama.cpp server;
the backend resolves it to that server's address at wiring time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from experts.errors import RegistryError, UnknownExpert

GENERALIST = "general"
LOCAL_API_BASE = "local"
# The context window the embedded llama.cpp server is started with (backend/local_llm.py).
LOCAL_CONTEXT_TOKENS = 2048
AUTO = "auto"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PiiPolicy = Literal["redact", "allow", "block"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(_Strict):
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=384, ge=1, le=32768)


class LLMSpec(_Strict):
    """A litellm model string plus where to reach it."""

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @property
    def is_local(self) -> bool:
        return self.api_base == LOCAL_API_BASE


class BreakerSpec(_Strict):
    """Circuit breaker: opens after ``failures`` consecutive failed calls, then lets one
    probe through after ``cooldown_s``."""

    failures: int = Field(default=5, ge=1, le=1000)
    cooldown_s: float = Field(default=30.0, gt=0, le=3600)


class GroundingSpec(_Strict):
    """What is done with an answer after its grounding check (backend/grounding/).

    ``min_score``: the share of the answer's claims that its cited passages must support.
    Below it, ``on_fail``: ``flag`` delivers it with the unsupported sentences marked;
    ``quote`` replaces it with the passage sentences that answer the question, each
    cited; ``refuse`` says the documents do not answer it and shows the closest passages.
    ``quote_first``: the passage sentences first, then the model's text marked as a
    draft; unset, on for ``api_base: local`` (a small model states facts wrongly).
    """

    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    on_fail: Literal["flag", "quote", "refuse"] = "flag"
    quote_first: bool | None = None


class ReviewSpec(_Strict):
    """Whether a person reviews this expert's answers (docs/review.md).

    ``when``: ``none``; ``on_fail`` (the grounding score is below ``grounding.min_score``);
    ``always``; ``sample`` (a ``sample_rate`` share of answers, drawn at random).
    ``delivery``: ``hold`` (the asker sees a placeholder until a reviewer approves) or
    ``deliver_with_notice`` (the answer is delivered with a notice and queued).
    ``group``: the reviewer group (a user group) whose members may review this
    expert; None: every reviewer. Admins may review every expert.
    """

    when: Literal["none", "on_fail", "always", "sample"] = "none"
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    delivery: Literal["hold", "deliver_with_notice"] = "hold"
    group: str | None = Field(default=None, min_length=1, max_length=120)

    @model_validator(mode="after")
    def _rate_fits(self) -> ReviewSpec:
        if self.when == "sample" and self.sample_rate <= 0.0:
            raise ValueError("sample_rate: must be above 0 when 'when' is 'sample'")
        if self.when != "sample" and self.sample_rate:
            raise ValueError("sample_rate: only used when 'when' is 'sample'")
        return self

    @property
    def active(self) -> bool:
        return self.when != "none"


class CacheSpec(_Strict):
    """The expert's response cache (backend/cache/, docs/cache.md).

    ``enabled``: first-turn answers that were delivered whole (finish ``stop``, no
    fallback, no review hold, grounding passed) are kept and replayed to a later
    question that is the same text or, by the router's embedding, at least
    ``threshold`` cosine-similar to it. ``threshold`` is calibrated for precision on
    bench/data/cache (near-miss questions such as invoices vs payslips must not share
    an answer). ``ttl_s``: how long an answer is kept; publishing the expert's index
    ends it sooner. ``max_entries``: the most answers kept per expert and scope (the
    oldest go first).
    """

    enabled: bool = False
    threshold: float = Field(default=0.95, gt=0.5, le=1.0)
    ttl_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    max_entries: int = Field(default=5_000, ge=1, le=1_000_000)


SafetyAction = Literal["allow", "flag", "general", "refuse"]
SAFETY_CATEGORIES = ("injection", "jailbreak", "extraction")


class SafetySpec(_Strict):
    """What is done with a request the input safety check flags (backend/guard/safety.py,
    docs/safety.md). The scores are the request's, computed once before routing; the
    policy applied is the strictest of the experts the request reaches (the one that
    answers and every one whose documents it reads), so naming a lenient expert does
    not get a request past a strict one.

    ``on_flag``: ``allow`` (answered, the scores audited), ``flag`` (answered, audited
    and listed in the console), ``general`` (answered by the generalist, without the
    expert's documents), ``refuse`` (a 400 ``unsafe_request``). ``thresholds``: a
    category's score at which it counts as flagged; unset categories use the model's
    calibrated threshold (tuned for a 1% false-positive budget).

    Answers (backend/guard/output.py): ``answer_secrets`` (API keys, passwords, private
    keys, connection strings) ``redact`` or ``block`` (the answer is withheld);
    ``answer_pii`` (e-mail addresses, phone numbers, IBANs, card and national numbers)
    ``allow``, ``redact`` or ``block``. The expert's system prompt never leaves.
    """

    on_flag: SafetyAction = "flag"
    thresholds: dict[str, float] = Field(default_factory=dict)
    answer_secrets: Literal["redact", "block"] = "redact"
    answer_pii: Literal["allow", "redact", "block"] = "allow"

    @field_validator("thresholds")
    @classmethod
    def _known_categories(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name not in SAFETY_CATEGORIES:
                raise ValueError(f"unknown safety category {name!r} (one of {', '.join(SAFETY_CATEGORIES)})")
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"thresholds.{name}: must be above 0 and at most 1")
        return value


class ReplicaSpec(_Strict):
    """One of several endpoints serving the same expert (same model, own address).

    ``capacity`` bounds the requests in flight on this replica; the expert's own
    ``capacity`` still bounds the total across its replicas.
    """

    api_base: str = Field(min_length=1)
    capacity: int = Field(default=4, ge=1, le=100_000)


class ExpertSpec(_Strict):
    name: str
    description: str = Field(min_length=10)
    llm: LLMSpec
    params: GenerationParams = GenerationParams()
    system_prompt: str = Field(min_length=1)
    index: str | None = None
    allowed_groups: tuple[str, ...] = ()
    capacity: int = Field(default=8, ge=1, le=100_000)
    # Optional: several endpoints for this expert's model, each with its own in-flight
    # capacity; a request goes to the least-loaded replica with room (backend.capacity).
    replicas: tuple[ReplicaSpec, ...] = ()
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # Resilience (experts/resilience.py): TCP connect and first-token deadlines, bounded
    # retries with exponential backoff + jitter on transient errors, a circuit breaker.
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    first_token_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.25, ge=0, le=60)
    retry_max_backoff_s: float = Field(default=4.0, ge=0, le=600)
    breaker: BreakerSpec = BreakerSpec()
    fallback: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    # What reaches this expert's endpoint when a request holds PII: redact it, allow it
    # as is, or block the request. Unset: allow for `api_base: local`, redact otherwise.
    pii: PiiPolicy | None = None
    # The model's context window in tokens, prompt and answer together: a longer prompt
    # is shortened (oldest turns, then lowest-ranked passages) or refused with a 400
    # (experts/budget.py). Unset: the bundled model's window for `api_base: local`, else
    # no local check (the endpoint's own context error becomes the same 400).
    context_tokens: int | None = Field(default=None, ge=256, le=10_000_000)
    grounding: GroundingSpec = GroundingSpec()
    review: ReviewSpec = ReviewSpec()
    cache: CacheSpec = CacheSpec()
    safety: SafetySpec = SafetySpec()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value) or value == AUTO:
            raise ValueError(
                "expert names are lowercase letters, digits, '-' or '_' (max 32), not 'auto'"
            )
        return value

    @model_validator(mode="after")
    def _deadlines_fit(self) -> ExpertSpec:
        if self.first_token_timeout_s is not None and self.first_token_timeout_s > self.timeout_s:
            raise ValueError("first_token_timeout_s must not exceed timeout_s")
        return self

    @model_validator(mode="after")
    def _distinct_replicas(self) -> ExpertSpec:
        bases = [r.api_base for r in self.replicas]
        if len(set(bases)) != len(bases):
            raise ValueError("replicas: each replica needs its own api_base")
        if self.replicas and self.llm.is_local:
            raise ValueError("replicas: not available with api_base 'local' (one embedded server)")
        return self

    @property
    def quotes_first(self) -> bool:
        """Whether answers start with the passage sentences (see GroundingSpec)."""
        if self.grounding.quote_first is not None:
            return self.grounding.quote_first
        return self.llm.is_local

    @property
    def context_window(self) -> int | None:
        """The context window prompts are fitted to (see ``context_tokens``)."""
        if self.context_tokens is not None:
            return self.context_tokens
        return LOCAL_CONTEXT_TOKENS if self.llm.is_local else None

    @property
    def pii_policy(self) -> PiiPolicy:
        """The effective PII policy (see the ``pii`` field)."""
        if self.pii is not None:
            return self.pii
        return "allow" if self.llm.is_local else "redact"

    def allows(self, groups: frozenset[str]) -> bool:
        """True when a caller in ``groups`` may use this expert (empty list = everyone)."""
        return not self.allowed_groups or bool(groups.intersection(self.allowed_groups))


class _RegistryFile(_Strict):
    defaults: dict[str, Any] = {}
    experts: dict[str, dict[str, Any]]


class ExpertRegistry:
    """The experts, in file order. Immutable after construction."""

    def __init__(self, experts: list[ExpertSpec]) -> None:
        self._experts = {e.name: e for e in experts}
        self._check()

    def _check(self) -> None:
        if GENERALIST not in self._experts:
            raise RegistryError(f"experts: the generalist {GENERALIST!r} must be defined")
        for spec in self._experts.values():
            for target in spec.fallback:
                if target not in self._experts:
                    raise RegistryError(f"experts.{spec.name}.fallback: unknown expert {target!r}")
                if target == spec.name:
                    raise RegistryError(
                        f"experts.{spec.name}.fallback: an expert cannot fall back to itself"
                    )

    @classmethod
    def from_yaml(cls, path: Path) -> ExpertRegistry:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RegistryError(f"cannot read experts file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_mapping(raw, source=str(path))

    @classmethod
    def from_mapping(cls, raw: object, source: str = "experts.yaml") -> ExpertRegistry:
        if not isinstance(raw, Mapping):
            raise RegistryError(f"{source}: expected a mapping with an 'experts' key")
        try:
            parsed = _RegistryFile.model_validate(raw)
        except ValidationError as exc:
            raise RegistryError(f"{source}: {_describe(exc, ())}") from exc
        specs: list[ExpertSpec] = []
        for name, body in parsed.experts.items():
            if not isinstance(body, Mapping):
                raise RegistryError(f"{source}: experts.{name}: expected a mapping")
            merged = _merge(parsed.defaults, dict(body))
            try:
                specs.append(ExpertSpec.model_validate({"name": name, **merged}))
            except ValidationError as exc:
                raise RegistryError(f"{source}: {_describe(exc, ('experts', name))}") from exc
        try:
            return cls(specs)
        except RegistryError as exc:
            raise RegistryError(f"{source}: {exc}") from exc

    def with_local_context(self, tokens: int) -> ExpertRegistry:
        """This registry with ``tokens`` as the context window of every ``api_base: local``
        expert that does not set its own (the embedded server's configured size)."""
        return ExpertRegistry(
            [
                e.model_copy(update={"context_tokens": tokens}) if e.llm.is_local and e.context_tokens is None else e
                for e in self
            ]
        )

    def get(self, name: str) -> ExpertSpec:
        try:
            return self._experts[name]
        except KeyError:
            raise UnknownExpert(name, self.names) from None

    def __contains__(self, name: object) -> bool:
        return name in self._experts

    def __iter__(self) -> Iterator[ExpertSpec]:
        return iter(self._experts.values())

    def __len__(self) -> int:
        return len(self._experts)

    @property
    def names(self) -> list[str]:
        return list(self._experts)

    @property
    def generalist(self) -> ExpertSpec:
        return self._experts[GENERALIST]

    def fallback_chain(self, name: str) -> list[str]:
        """Experts to try after ``name`` fails, in order, ending at the generalist.

        Follows each expert's ``fallback`` list breadth-first, skipping repeats, and
        appends ``general`` if the chain did not reach it.
        """
        chain: list[str] = []
        queue = list(self.get(name).fallback)
        while queue:
            nxt = queue.pop(0)
            if nxt == name or nxt in chain:
                continue
            chain.append(nxt)
            queue.extend(self._experts[nxt].fallback)
        if name != GENERALIST and GENERALIST not in chain:
            chain.append(GENERALIST)
        return chain


def _merge(defaults: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Shallow merge, except nested mappings (llm, params) which merge one level deep."""
    merged: dict[str, Any] = dict(defaults)
    for key, value in body.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, prefix: tuple[str, ...]) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)

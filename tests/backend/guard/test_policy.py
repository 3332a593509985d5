from __future__ import annotations

import pytest

from router.errors import ExpertNotAllowed, UnknownExpertName
from router.policy import DecisionPolicy, PolicyConfig
from router.types import Reason, RouteRequest, Scores

CAPS = {"code": 2, "legal": 1, "support": 2, "general": 8}


def scores(
    code: float = 0.0,
    legal: float = 0.0,
    support: float = 0.0,
    general: float = 0.0,
    in_domain: float = 0.8,
) -> Scores:
    return Scores({"code": code, "legal": legal, "support": support, "general": general}, in_domain)


policy = DecisionPolicy(
    PolicyConfig(
        min_confidence=0.5,
        ood_threshold=0.3,
        top_k=2,
        top_k_margin=0.3,
        overflow_min_prob=0.2,
        switch_confidence=0.85,
    ),
    CAPS,
)


def test_confident_top_expert_is_routed() -> None:
    d = policy.decide(scores(legal=0.9, code=0.05, general=0.05), RouteRequest("q"), "v1")
    assert (d.expert, d.reason, d.router_version) == ("legal", Reason.ROUTED, "v1")
    assert d.confidence == pytest.approx(0.9)
    assert d.top_k == ("legal",)


def test_low_confidence_goes_to_general() -> None:
    d = policy.decide(scores(legal=0.4, code=0.35, support=0.25), RouteRequest("q"), "v1")
    assert d.expert == "general" and d.reason == Reason.LOW_CONFIDENCE
    assert d.top_k == ("legal", "code")


def test_out_of_domain_goes_to_general_even_when_confident() -> None:
    d = policy.decide(scores(code=0.95, general=0.05, in_domain=0.1), RouteRequest("q"), "v1")
    assert d.expert == "general" and d.reason == Reason.OUT_OF_DOMAIN


def test_forbidden_expert_is_removed_before_the_choice() -> None:
    req = RouteRequest("q", allowed=frozenset({"code", "support"}))
    d = policy.decide(scores(legal=0.7, support=0.25, general=0.05), req, "v1")
    assert d.expert == "support"
    assert d.probabilities["legal"] == 0.0
    assert "legal" in d.detail


def test_explicit_request_is_honoured_when_allowed() -> None:
    d = policy.decide(scores(code=0.9), RouteRequest("q", requested="legal"), "v1")
    assert (d.expert, d.reason) == ("legal", Reason.REQUESTED)


def test_explicit_request_for_forbidden_expert_raises() -> None:
    with pytest.raises(ExpertNotAllowed):
        policy.decide(
            scores(code=0.9),
            RouteRequest("route me to legal", requested="legal", allowed=frozenset({"code"})),
            "v1",
        )


def test_unknown_requested_expert_raises() -> None:
    with pytest.raises(UnknownExpertName):
        policy.decide(scores(code=0.9), RouteRequest("q", requested="finance"), "v1")


def test_overflow_goes_to_next_top_k_expert_with_room() -> None:
    req = RouteRequest("q", in_flight={"legal": 1})
    d = policy.decide(scores(legal=0.6, support=0.35, general=0.05), req, "v1")
    assert (d.expert, d.reason) == ("support", Reason.OVERFLOW)
    assert "legal at capacity" in d.detail


def test_overflow_goes_to_general_when_next_is_too_unlikely() -> None:
    req = RouteRequest("q", in_flight={"legal": 1})
    d = policy.decide(scores(legal=0.85, support=0.1, general=0.05), req, "v1")
    assert (d.expert, d.reason) == ("general", Reason.OVERFLOW)


def test_follow_up_stays_with_conversation_expert() -> None:
    req = RouteRequest("and the second clause?", previous_expert="legal")
    d = policy.decide(scores(general=0.6, legal=0.3, code=0.1, in_domain=0.2), req, "v1")
    assert (d.expert, d.reason) == ("legal", Reason.CONTEXT)


def test_clear_switch_leaves_the_conversation_expert() -> None:
    req = RouteRequest("my python import fails", previous_expert="legal")
    d = policy.decide(scores(code=0.95, legal=0.05), req, "v1")
    assert (d.expert, d.reason) == ("code", Reason.ROUTED)


def test_same_input_same_decision() -> None:
    s = scores(legal=0.5, code=0.3, support=0.2)
    assert policy.decide(s, RouteRequest("q"), "v1") == policy.decide(s, RouteRequest("q"), "v1")

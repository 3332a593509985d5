"""A sanity check of the gate the package ships (its quality is measured by the
benchmarks, bench/router_compare.py, not here): unambiguous requests, one expert each."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.artifacts import ArtifactStore
from router.encoder import Encoder
from router.loading import scorer_for
from router.policy import DecisionPolicy
from router.service import Router
from router.types import Reason, RouteRequest

SMOKE = {
    "code": [
        "python sort a list of dicts by a key",
        "git undo the last commit but keep my changes",
        "NullPointerException when calling a method on a Java list",
        "write a bash loop over every .csv file in a folder",
        "SQL query to find duplicate emails in a users table",
        "how do I center a div with flexbox",
        "docker container exits immediately with code 137",
        "Delete all empty files under the current directory",
        "What is the time complexity of quicksort?",
        "VB6 form migration to WinForms",
    ],
    "legal": [
        "can my landlord keep my deposit for normal wear and tear",
        "is a verbal agreement legally binding in the UK",
        "can I use GPL code in a closed-source product",
        "what does GDPR say about how long we may keep customer data",
        "my employer fired me for being pregnant, is that legal",
        "do you sell my personal data to advertisers",
        "what is the statute of limitations for breach of contract",
        "does a non-compete clause hold up in California",
        "who owns the copyright of a photo a contractor took for us",
        "how do I contest a speeding ticket in court",
    ],
    "support": [
        "my card was declined at the supermarket",
        "I still haven't received my order from last week",
        "how do I reset my password, the link never arrives",
        "why was I charged twice for my subscription",
        "my transfer to another account has not arrived yet",
        "I want to return a damaged item and get a refund",
        "my account is locked after too many login attempts",
        "how do I cancel my plan before it renews",
        "the app crashes every time I open my statements",
        "can I change the delivery address on my order",
    ],
    "general": [
        "set an alarm for 6:30 tomorrow morning",
        "play some jazz in the kitchen",
        "what's the weather like in Lisbon this weekend",
        "who won the football world cup in 1998",
        "give me a recipe for banana bread",
        "write a short poem about autumn",
        "how many kilometres are in a mile",
        "tell me a joke",
        "what is the capital of Australia",
        "remind me to call my mum at 5 pm",
    ],
}


@pytest.fixture(scope="module")
def shipped(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Router:
    store = ArtifactStore(Path(tmp_path_factory.mktemp("router")))  # nothing promoted: the bundled default
    version = store.active()
    assert version is not None
    gate = store.load(version)
    return Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))


def test_the_shipped_gate_routes_unambiguous_requests(shipped: Router) -> None:
    requests = [(text, expert) for expert, texts in SMOKE.items() for text in texts]
    decisions = shipped.route_many([RouteRequest(text) for text, _ in requests])
    wrong = [(text, expert, d.expert) for (text, expert), d in zip(requests, decisions, strict=True) if d.expert != expert]
    # A sanity bar, not a quality figure: one slip in forty is tolerated.
    assert len(wrong) <= 1, wrong
    for d in decisions:
        assert d.router_version == shipped.version and d.reason in set(Reason)
        assert abs(sum(d.probabilities.values()) - 1.0) < 1e-4 and d.expert in d.probabilities

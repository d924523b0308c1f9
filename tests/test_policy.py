"""enact_proxy/policy.py: running policies, factories, the claims a policy states."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from enact_proxy.models import PolicyResult
from enact_proxy.policy import evaluate, factory, failed, instantiate, passed, policy_name
from tests.conftest import make_context


@factory
def at_most(limit: int = 2):
    def at_most(ctx):
        count = len(ctx.payload.get("items", []))
        return passed("at_most", "ok") if count <= limit else failed("at_most", f"{count} > {limit}")

    return at_most


def test_factory_validates_parameters():
    with pytest.raises(ValidationError):
        at_most(limit="lots")
    with pytest.raises(ValidationError):
        at_most(limt=3)


def test_factory_coerces_and_applies_parameters():
    policy = at_most(limit=1)
    assert not policy(make_context(None, {"items": [1, 2]})).passed
    assert policy(make_context(None, {"items": [1]})).passed


def test_instantiate_calls_an_uncalled_factory_with_defaults():
    policy = instantiate(at_most)
    result = policy(make_context(None, {"items": [1, 2, 3]}))
    assert isinstance(result, PolicyResult)
    assert result.reason == "3 > 2"


def test_instantiate_leaves_plain_policies_alone():
    def plain(ctx):
        return passed("plain", "ok")

    assert instantiate(plain) is plain


def test_policy_name_prefers_policy_name_attribute():
    def fn(ctx):
        return passed("fn", "ok")

    assert policy_name(fn) == "fn"
    fn.policy_name = "custom"  # type: ignore[attr-defined]
    assert policy_name(fn) == "custom"

    class Callable_:
        def __call__(self, ctx):
            return passed("x", "y")

    assert policy_name(Callable_()) == "Callable_"


def test_evaluate_keeps_order_and_never_stops_early():
    def boom(ctx):
        raise RuntimeError("kaput")

    def nothing(ctx):
        return None

    def good(ctx):
        return passed("good", "fine")

    results = evaluate([boom, nothing, good], make_context(None, {}))
    assert [(r.policy, r.passed) for r in results] == [("boom", False), ("nothing", False), ("good", True)]
    assert results[0].reason == "policy raised RuntimeError: kaput"
    assert results[1].reason == "policy returned NoneType, not a PolicyResult"


def test_claims_are_attributed_to_their_policy_and_dropped_when_it_fails():
    from datetime import timedelta

    from enact_proxy.state import Limit, Unique

    def claims_and_passes(ctx):
        ctx.claim(Unique("a"))
        return passed("claims_and_passes", "ok")

    def claims_and_fails(ctx):
        ctx.claim(Limit("b", max=1, window=timedelta(minutes=1)))
        return failed("claims_and_fails", "no")

    def claims_and_raises(ctx):
        ctx.claim(Unique("c"))
        raise RuntimeError("boom")

    ctx = make_context(None, {})
    evaluate([claims_and_passes, claims_and_fails, claims_and_raises], ctx)
    assert ctx._claims == [("claims_and_passes", Unique("a"))]


def test_a_policy_that_asks_a_person_runs_only_once_every_other_policy_passed():
    from enact_proxy.policy import asks_a_person, looks_up

    asked = []

    @asks_a_person
    @looks_up("hubspot.create_contact")
    def person(ctx):
        asked.append(ctx.workflow)
        return failed("person", "pending")

    def refusing(ctx):
        return failed("refusing", "no")

    def fine(ctx):
        return passed("fine", "ok")

    held = "hubspot.create_contact"
    results = evaluate([person, refusing, fine], make_context(held, {}, workflow="w"))
    assert asked == []  # nobody is asked to approve what is refused anyway
    assert [(r.policy, r.passed) for r in results] == [("person", False), ("refusing", False), ("fine", True)]
    assert results[0].reason == "not put to a person (refused by refusing)"
    results = evaluate([person, fine], make_context(held, {}, workflow="w"))
    assert asked == ["w"] and [r.policy for r in results] == ["person", "fine"]
    evaluate([person, refusing], make_context("hubspot.create_deal", {}, workflow="x"))
    assert asked == ["w", "x"]  # an action it does not hold: it runs like any other policy


def test_results_with_one_text_are_shared_and_frozen():
    from enact_proxy.policy import SHARED_REASON_CHARS

    first, again = passed("p", "not a git action"), passed("p", "not a git action")
    assert first is again  # one object per fixed text: no copy per decision
    assert failed("p", "not a git action") is not first and not failed("p", "not a git action").passed
    with pytest.raises(ValidationError):
        first.reason = "changed"  # shared, so nobody may change it
    long = "x" * (SHARED_REASON_CHARS + 1)  # an exception's text or a quoted payload: not kept
    assert passed("p", long) is not passed("p", long) and passed("p", long).reason == long


def test_nested_evaluate_keeps_each_runs_claims_apart():
    from enact_proxy.state import Unique

    def inner(ctx):
        ctx.claim(Unique("inner"))
        return passed("inner", "ok")

    def outer(ctx):
        ctx.claim(Unique("before"))
        nested = make_context(None, {})
        evaluate([inner], nested)  # a policy that runs others on its own context
        assert nested._claims == [("inner", Unique("inner"))]
        ctx.claim(Unique("after"))
        return passed("outer", "ok")

    ctx = make_context(None, {})
    evaluate([outer], ctx)
    assert ctx._claims == [("outer", Unique("before")), ("outer", Unique("after"))]

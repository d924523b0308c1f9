"""enact_proxy/policy.py: running policies, factories, the on_pass hook."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from enact_proxy.models import PolicyResult
from enact_proxy.policy import after_pass, evaluate, factory, failed, instantiate, passed, policy_name
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


def test_after_pass_calls_only_hooks():
    counted = []

    def stateful(ctx):
        return passed("stateful", "ok")

    def stateless(ctx):
        return passed("stateless", "ok")

    stateful.on_pass = lambda ctx: counted.append(ctx.workflow)  # type: ignore[attr-defined]
    after_pass([stateless, stateful], make_context(None, {}, workflow="w1"))
    assert counted == ["w1"]

"""enact_proxy/admin/metrics.py: /metrics of the main process adds in the other HTTP fronts' values."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from enact_proxy.admin.metrics import Metrics, add_samples


def _verdict(action: str, decision: str, failed: tuple[str, ...] = ()) -> SimpleNamespace:
    system, _, _ = action.partition(".")
    return SimpleNamespace(action=SimpleNamespace(system=system, full_name=action),
                           decision=SimpleNamespace(value=decision), mode="enforce",
                           policy_results=[SimpleNamespace(passed=False, policy=p) for p in failed])


def _values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}


def test_the_other_fronts_values_are_added_to_this_ones_including_label_sets_only_they_saw():
    main, worker, other = Metrics(), Metrics(), Metrics()
    main.recorded(_verdict("hubspot.get_contact", "PASS"))
    main.judged(0.001)
    for _ in range(3):
        worker.recorded(_verdict("hubspot.get_contact", "PASS"))
        worker.judged(0.2)
    other.recorded(_verdict("hubspot.create_deal", "BLOCK", failed=("workflow",)))
    main.watch_unwritable(lambda: False)
    sent = worker.samples()
    assert all(not name.endswith("_created") for name, _ in sent)
    fronts: dict = {}
    add_samples(fronts, sent)
    add_samples(fronts, other.samples())
    main.others = lambda: fronts
    values = _values(main)
    passed = ("enact_decisions_total", (("action", "hubspot.get_contact"), ("decision", "PASS"), ("mode", "enforce"),
                                        ("system", "hubspot")))
    blocked = ("enact_decisions_total", (("action", "hubspot.create_deal"), ("decision", "BLOCK"),
                                         ("mode", "enforce"), ("system", "hubspot")))
    assert values[passed] == 4.0
    assert values[blocked] == 1.0  # only another front decided one of these
    assert values[("enact_policy_failures_total", (("policy", "workflow"),))] == 1.0
    assert values[("enact_decision_seconds_count", ())] == 4.0
    assert values[("enact_decision_seconds_bucket", (("le", "0.001"),))] == 1.0
    assert values[("enact_decision_seconds_bucket", (("le", "0.25"),))] == 4.0
    assert values[("enact_receipts_unwritable", ())] == 0.0  # a gauge: this process's own, never summed


def test_without_other_fronts_render_is_this_registry_alone():
    metrics = Metrics()
    metrics.recorded(_verdict("github.read", "PASS"))
    assert metrics.others is None
    assert b'enact_decisions_total{action="github.read",decision="PASS",mode="enforce",system="github"} 1.0' \
        in metrics.render()

"""enact_proxy/config.py: strict enact.yaml; every error names the key, its line and the fault."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enact_proxy.cli import main
from enact_proxy.config import ConfigError, load_config, resolve_policy
from tests.conftest import make_context

TESTDATA = Path(__file__).parent / "testdata"

BAD = [
    # (file, what the message must name)
    ("bad_unknown_top_level_key.yaml", ["recipts", "unknown key"]),
    ("bad_unknown_policy.yaml", ["policies.1", "unknown policy 'no_push_to_mian'"]),
    ("bad_policy_parameter.yaml", ["policies.1", "max_files_per_commit", "max_files", "integer"]),
    ("bad_unknown_action.yaml", ["workflows.new_lead_workflow.1", "unknown action 'hubspot.delete_everything'"]),
    ("bad_unknown_system.yaml", ["systems.salesforce", "unknown system 'salesforce'"]),
    ("bad_unconfigured_system.yaml", ["workflows.agent_git.0", "needs systems.github to be configured"]),
    ("bad_listen_address.yaml", ["listen.http", "expected host:port", "'localhost'"]),
    ("bad_missing_version.yaml", ["version", "required key is missing"]),
    ("bad_wrong_mode.yaml", ["mode", "'enforce' or 'shadow'"]),
    ("bad_yaml_syntax.yaml", ["not valid YAML"]),
]


def _error_line(name: str) -> int:
    """The line a bad file marks with ``# ERROR`` (line 1 when nothing is marked: a missing key)."""
    for number, line in enumerate((TESTDATA / name).read_text().splitlines(), start=1):
        if "# ERROR" in line:
            return number
    return 1


@pytest.mark.parametrize(("name", "needles"), BAD)
def test_load_config_names_key_line_and_fault(name, needles):
    with pytest.raises(ConfigError) as raised:
        load_config(TESTDATA / name)
    (error,) = raised.value.errors
    for needle in needles:
        assert needle in error
    assert f"line {_error_line(name)}" in error


@pytest.mark.parametrize(("name", "needles"), BAD)
def test_check_exits_1_and_prints_the_error(name, needles, capsys):
    assert main(["check", "--config", str(TESTDATA / name)]) == 1
    err = capsys.readouterr().err
    assert name in err
    assert f"line {_error_line(name)}" in err
    for needle in needles:
        assert needle in err


def test_every_error_is_reported_at_once(tmp_path):
    path = tmp_path / "enact.yaml"
    path.write_text("version: 1\nactor: {email: a@b.c}\nsystems: {hubspot: {}}\n"
                    "workflows: {w: [hubspot.nope, github.read]}\npolicies: [nope, max_files_per_commit: {x: 1}]\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert len(raised.value.errors) == 4


def test_valid_full_config_loads(capsys):
    path = TESTDATA / "valid_full.yaml"
    config = load_config(path)
    assert main(["check", "--config", str(path)]) == 0
    assert "ok (3 systems, 3 workflows, 8 policies" in capsys.readouterr().out
    assert config.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config.workflows["new_lead_workflow"] == frozenset(
        {"hubspot.create_contact", "hubspot.create_deal", "hubspot.create_task"})
    assert set(config.systems) == {"hubspot", "github", "postgres"}
    assert config.raw.mode == "enforce"
    assert config.raw.egress.passthrough == ["api.openai.com", "api.anthropic.com"]
    assert config.receipts_dir == TESTDATA / "receipts"  # relative to the config file's folder
    assert config.certs_dir == TESTDATA / "certs"
    names = [getattr(p, "__name__", "") for p in config.policies]
    assert names == ["no_duplicate_contacts", "limit_tasks_per_contact", "require_actor_role",
                     "contractor_cannot_write_pii", "no_push_to_main", "max_files_per_commit",
                     "require_branch_prefix", "within_maintenance_window"]
    # Parameters reached the factories.
    max_files = config.policies[5]
    assert max_files(make_context("github.push_commit", {"files": list("x" * 20)})).passed
    assert not max_files(make_context("github.push_commit", {"files": list("x" * 21)})).passed
    window = config.policies[7]
    assert window(make_context("github.read", {}, now=datetime(2024, 1, 15, 8, 30, tzinfo=UTC))).passed  # 9:30 CET


def test_module_function_policies_resolve():
    config = load_config(TESTDATA / "valid_custom_policy.yaml")
    friday = datetime(2024, 1, 19, 12, 0, tzinfo=UTC)
    no_friday, max_commits = config.policies[1], config.policies[2]
    assert not no_friday(make_context("github.push_commit", {"branch": "agent/x"}, now=friday)).passed
    assert no_friday(make_context("github.push_commit", {"branch": "agent/x"})).passed  # a Monday
    assert not max_commits(make_context("github.push_commit", {"commits": [{}, {}, {}]})).passed
    assert max_commits(make_context("github.push_commit", {"commits": [{}, {}]})).passed


@pytest.mark.parametrize(("name", "params", "message"), [
    ("tests.custom_policies:missing", None, "cannot import policy"),
    ("no_such_module_xyz:policy", None, "cannot import policy"),
    ("tests.custom_policies:NOT_CALLABLE", None, "is not callable"),
    ("no_push_to_main", {"x": 1}, "takes no parameters"),
    ("tests.custom_policies:max_commits", {"limit": "many"}, "limit"),
    ("within_maintenance_window", {"timezone": "Nowhere/Atlantis"}, "Nowhere/Atlantis"),
])
def test_resolve_policy_errors(name, params, message):
    with pytest.raises((LookupError, TypeError, ValueError)) as raised:
        resolve_policy(name, params)
    assert message in str(raised.value)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_system_options_are_strict(tmp_path):
    path = tmp_path / "enact.yaml"
    path.write_text("version: 1\nactor: {email: a@b.c}\nsystems:\n  hubspot: {upstream: x, tokn_env: T}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (error,) = raised.value.errors
    assert "systems.hubspot.tokn_env" in error
    assert "line 4" in error


def test_the_shipped_example_config_is_valid() -> None:
    from pathlib import Path

    from enact_proxy.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "enact.example.yaml")
    assert set(config.systems) == {"hubspot", "github", "postgres"}
    assert len(config.policies) == 10


# --- generated action names (connectors/routes): allowed by name, typos answered with the nearest ---

_ROUTES_CONFIG = """version: 1
actor: {{email: a@b.c}}
systems: {{hubspot: {{}}, github: {{}}}}
workflows:
  w:
    - {action}
"""


@pytest.mark.parametrize("action", [
    "github.issues/create-comment", "github.issues/add-labels", "github.merge_pr", "github.unknown",
    "hubspot.post-/crm/objects/notes", "hubspot.patch-/crm/objects/notes/*", "hubspot.get-/crm/objects/deals/*",
    "hubspot.post-/engagements/engagements",
])
def test_a_workflow_may_name_a_documented_operation(tmp_path, action):
    path = tmp_path / "enact.yaml"
    path.write_text(_ROUTES_CONFIG.format(action=action))
    assert load_config(path).workflows["w"] == frozenset({action})


@pytest.mark.parametrize(("action", "needles"), [
    ("github.issues/create-coment", ["unknown action 'github.issues/create-coment'",
                                     "did you mean github.issues/create-comment"]),
    ("github.pulls/merge", ["always recognised as github.merge_pr"]),
    ("github.repos/rename-branch", ["github.delete_branch and github.create_branch"]),
    ("hubspot.post-/crm/objects/note", ["did you mean hubspot.post-/crm/objects/notes"]),
    ("hubspot.post-/crm/objects/contacts", ["always recognised as hubspot.create_contact"]),
    ("'hubspot.POST /crm/v3/objects/notes'", ["that route is the action hubspot.post-/crm/objects/notes"]),
    ("'github.POST /repos/{owner}/{repo}/issues/{issue_number}/comments'",
     ["that route is the action github.issues/create-comment"]),
    ("hubspot.delete_everything", ["no hubspot action is named like it", "create_contact"]),
])
def test_an_unknown_action_names_the_nearest(tmp_path, action, needles):
    path = tmp_path / "enact.yaml"
    path.write_text(_ROUTES_CONFIG.format(action=action))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (error,) = raised.value.errors
    assert "line 6: workflows.w.0" in error
    for needle in needles:
        assert needle in error
    assert len(error) < 400  # suggestions, not the list of 1,900 names


def test_check_suggests_the_nearest_name(tmp_path, capsys):
    path = tmp_path / "enact.yaml"
    path.write_text(_ROUTES_CONFIG.format(action="github.issues/create_comment"))
    assert main(["check", "--config", str(path)]) == 1
    assert "did you mean github.issues/create-comment" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "fault"), [
    ("0", "greater than or equal to 1"), ("33", "less than or equal to 32"), ("-2", "greater than or equal to 1"),
    ('"4"', "valid integer"), ("true", "valid integer"), ("2.5", "valid integer"),
])
def test_listen_workers_is_an_integer_from_1_to_32_and_a_bad_one_names_the_key(tmp_path, value, fault):
    path = tmp_path / "enact.yaml"
    path.write_text(f"version: 1\nactor: {{email: a@b.c}}\nlisten:\n  http: 127.0.0.1:8080\n  workers: {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (error,) = raised.value.errors
    assert error.startswith("line 5: listen.workers: ") and fault in error


def test_listen_workers_defaults_to_one_front_process(tmp_path):
    path = tmp_path / "enact.yaml"
    path.write_text("version: 1\nactor: {email: a@b.c}\n")
    assert load_config(path).raw.listen.workers == 1
    path.write_text("version: 1\nactor: {email: a@b.c}\nlisten: {workers: 4}\n")
    assert load_config(path).raw.listen.workers == 4

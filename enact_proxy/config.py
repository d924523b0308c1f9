"""``enact.yaml``: parsed once into domain objects; every error names the key, its line and the fault."""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import connectors
import policies as builtin_policies
from enact_proxy.policy import Policy, policy_name

DEFAULT_MAX_BODY = 1024 * 1024
MAX_WORKERS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Actor(_Strict):
    email: str
    roles: list[str] = Field(default_factory=list)


class Listen(_Strict):
    http: str = "127.0.0.1:8080"
    postgres: str = "127.0.0.1:15432"
    # Connections the network redirects here (iptables REDIRECT / DNAT) are intercepted like proxied
    # ones and routed by their TLS server name or Host, never by their original destination. Off by default.
    transparent: str | None = None
    admin: str = "127.0.0.1:8081"  # the console, /api/, /metrics, /healthz, /readyz; "off" disables it
    # HTTP(S) front processes sharing the `http` (and `transparent`) port with SO_REUSEPORT, all feeding
    # the one receipt writer: more than 1 spreads mitmproxy's per-request work (TLS, parsing) over cores.
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS, strict=True)

    @field_validator("http", "postgres", "transparent", "admin")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or value == "off":
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value


class Receipts(_Strict):
    dir: str = "receipts"
    segment_mb: float = Field(default=64, gt=0)  # a new segment starts past this size (and at UTC midnight)
    checkpoint_seconds: float = Field(default=1, gt=0, le=3600)  # a signed checkpoint within this of a record


class AdminToken(_Strict):
    name: str = Field(min_length=1, max_length=200)  # the person: recorded on approvals they decide
    token_env: str = Field(min_length=1)


class Admin(_Strict):
    """Who may use the admin listener (SPEC §8). Without ``tokens``, one token named ``admin`` is made
    in ``certs/admin.token`` on first run."""

    tokens: list[AdminToken] = Field(default_factory=list)
    webhook_url: str | None = None  # POSTed (Slack-compatible JSON) on each new pending approval


class State(_Strict):
    """Where stateful policies keep their claims (SPEC §7)."""

    url: str | None = None  # default: sqlite beside the receipts (receipts.dir/.state.sqlite)
    password_env: str | None = None
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("sqlite://"):
            if not value.startswith("sqlite:///") or value == "sqlite:///":
                raise ValueError("expected sqlite:///relative/path or sqlite:////absolute/path")
        elif not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///... or postgresql://user@host/db")
        return value


class Egress(_Strict):
    passthrough: list[str] = Field(default_factory=list)


class Limits(_Strict):
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, gt=0)


class ConfigFile(_Strict):
    version: Literal[1]
    actor: Actor
    mode: Literal["enforce", "shadow"] = "enforce"
    listen: Listen = Field(default_factory=Listen)
    receipts: Receipts = Field(default_factory=Receipts)
    certs_dir: str = "certs"
    state: State = Field(default_factory=State)
    admin: Admin = Field(default_factory=Admin)
    egress: Egress = Field(default_factory=Egress)
    systems: dict[str, dict[str, Any]] = Field(default_factory=dict)
    workflows: dict[str, list[str]] = Field(default_factory=dict)
    policies: list[str | dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)


class ConfigError(Exception):
    def __init__(self, path: Path | str, errors: list[str]):
        self.path = str(path)
        self.errors = errors
        super().__init__("\n".join(f"{self.path}: {e}" for e in errors))


@dataclass
class EnactConfig:
    """The validated configuration, with names resolved to objects and paths made absolute."""

    path: Path
    raw: ConfigFile
    sha256: str
    systems: dict[str, Any]  # system name -> that connector's validated Config
    workflows: dict[str, frozenset[str]]
    policies: list[Policy]
    text: bytes = b""  # the file's bytes as read (sha256 is theirs): what a replacement HTTP front is given

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def receipts_dir(self) -> Path:
        return self.resolve(self.raw.receipts.dir)

    @property
    def certs_dir(self) -> Path:
        return self.resolve(self.raw.certs_dir)

    @property
    def state_url(self) -> str:
        """``state.url``, or the SQLite file beside the receipts (as an absolute ``sqlite:////`` URL)."""
        return self.raw.state.url or f"sqlite:///{self.receipts_dir / '.state.sqlite'}"


def load_config(path: Path | str, text: bytes | None = None) -> EnactConfig:
    """Read and validate ``path``; ``text``: these bytes as if they were the file's (relative paths and
    ``module:function`` policies still resolve from the file's folder)."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        node = yaml.compose(text.decode("utf-8"), Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError(path, ["the top level must be a mapping (version: 1, actor: ..., ...)"])
    lines = _LineFinder(node)
    try:
        raw = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, [_pydantic_error(e, lines) for e in exc.errors()]) from exc
    errors: list[str] = []
    # `module:function` policies kept next to the config (mycompany/policies.py) import like the built-ins.
    if str(path.resolve().parent) not in sys.path:
        sys.path.append(str(path.resolve().parent))
    systems = _systems(raw, lines, errors)
    workflows = _workflows(raw, systems, lines, errors)
    resolved_policies = _policies(raw, lines, errors)
    if errors:
        raise ConfigError(path, errors)
    return EnactConfig(path=path.resolve(), raw=raw, sha256=hashlib.sha256(text).hexdigest(),
                       systems=systems, workflows=workflows, policies=resolved_policies, text=text)


def _systems(raw: ConfigFile, lines: _LineFinder, errors: list[str]) -> dict[str, Any]:
    available = connectors.available()
    out: dict[str, Any] = {}
    for name, options in raw.systems.items():
        module = available.get(name)
        if module is None:
            errors.append(lines.say(("systems", name), f"unknown system {name!r}; known: {sorted(available)}"))
            continue
        try:
            out[name] = module.Config.model_validate(options or {})
        except ValidationError as exc:
            errors.extend(_pydantic_error(e, lines, ("systems", name)) for e in exc.errors())
    return out


def _workflows(raw: ConfigFile, systems: dict[str, Any], lines: _LineFinder,
               errors: list[str]) -> dict[str, frozenset[str]]:
    available = connectors.available()
    out: dict[str, frozenset[str]] = {}
    for name, actions in raw.workflows.items():
        for i, full in enumerate(actions):
            where = ("workflows", name, i)
            system, _, action = full.partition(".")
            if system not in available:
                errors.append(lines.say(where, f"unknown system {system!r} in action {full!r}"))
            elif action not in connectors.actions(system):
                errors.append(lines.say(where, f"unknown action {full!r}; {connectors.suggest(system, action)}"))
            elif system not in systems:
                errors.append(lines.say(where, f"action {full!r} needs systems.{system} to be configured"))
        out[name] = frozenset(actions)
    return out


def _policies(raw: ConfigFile, lines: _LineFinder, errors: list[str]) -> list[Policy]:
    out: list[Policy] = []
    for i, entry in enumerate(raw.policies):
        if isinstance(entry, dict):
            if len(entry) != 1:
                errors.append(lines.say(("policies", i), "a parameterised policy is one `name: {params}` mapping"))
                continue
            ((name, params),) = entry.items()
        else:
            name, params = entry, None
        try:
            out.append(resolve_policy(name, params))
        except (LookupError, TypeError, ValueError, ImportError) as exc:
            errors.append(lines.say(("policies", i), str(exc)))
    return out


def resolve_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    """A built-in name or ``module:function``; a factory is called with ``params``."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import policy {name!r}: {exc}") from exc
    elif name in builtin_policies.BUILTIN:
        target = builtin_policies.BUILTIN[name]
    else:
        raise LookupError(f"unknown policy {name!r}; built-in: {sorted(builtin_policies.BUILTIN)}")
    if getattr(target, "is_policy_factory", False):
        try:
            made: Policy = target(**(params or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"policy {name!r}: {problems}") from exc
        return made
    if params:
        raise ValueError(f"policy {name!r} takes no parameters")
    if not callable(target):
        raise TypeError(f"policy {name!r} is not callable")
    return target  # type: ignore[no-any-return]


class _LineFinder:
    """Maps a key path (``("systems", "hubspot", "upstream")``) to its line in the YAML."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def line(self, loc: tuple[Any, ...]) -> int | None:
        node = self.root
        found = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
                if match is None:
                    break
                found, node = match[0].start_mark.line + 1, match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                found = node.start_mark.line + 1
            else:
                break
        return found

    def say(self, loc: tuple[Any, ...], message: str) -> str:
        line = self.line(loc)
        key = ".".join(str(p) for p in loc)
        return f"line {line}: {key}: {message}" if line else f"{key}: {message}"


def _pydantic_error(error: Any, lines: _LineFinder, prefix: tuple[Any, ...] = ()) -> str:
    loc = prefix + tuple(p for p in error["loc"] if not (isinstance(p, str) and p in ("str", "dict[str,any]")))
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return lines.say(loc, message)


__all__ = ["ConfigError", "EnactConfig", "load_config", "resolve_policy", "policy_name"]

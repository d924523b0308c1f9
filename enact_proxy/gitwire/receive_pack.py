"""Parse the body of a smart-HTTP ``POST .../git-receive-pack`` (gitprotocol-pack, reference update).

Layout: shallow lines, the command list (capabilities after a NUL on the first command),
a flush-pkt, push options (only when the ``push-options`` capability was sent) ending with a
flush-pkt, then the packfile (absent when every command deletes a ref).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dulwich.refs import Ref, check_ref_format

from enact_proxy.gitwire.errors import GitWireError
from enact_proxy.gitwire.pktline import FLUSH, PktReader

ZERO_ID = "0" * 40
MAX_COMMANDS = 10_000
MAX_PUSH_OPTIONS = 1_000
MAX_SHALLOW_LINES = 100_000
_OBJECT_ID = re.compile(r"[0-9a-f]{40}")
_PACK_SIGNATURE = b"PACK"


@dataclass(frozen=True)
class RefCommand:
    old: str
    new: str
    ref: str

    @property
    def is_create(self) -> bool:
        return self.old == ZERO_ID and self.new != ZERO_ID

    @property
    def is_delete(self) -> bool:
        return self.new == ZERO_ID


@dataclass(frozen=True)
class ReceivePackRequest:
    commands: list[RefCommand]
    capabilities: frozenset[str]
    push_options: list[str] = field(default_factory=list)
    pack: bytes = b""
    shallow: list[str] = field(default_factory=list)

    def has_capability(self, name: str) -> bool:
        """True when ``name`` was sent, bare or as ``name=value``."""
        return any(cap == name or cap.startswith(name + "=") for cap in self.capabilities)


def is_probe_request(body: bytes) -> bool:
    """git's 4-byte probe POST that precedes a large chunked push: only a flush-pkt."""
    return body == b"0000"


def _text(payload: bytes, what: str) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GitWireError(f"{what} is not valid UTF-8") from exc
    return text[:-1] if text.endswith("\n") else text


def _object_id(value: str, what: str) -> str:
    if not _OBJECT_ID.fullmatch(value):
        raise GitWireError(f"{what} {value[:80]!r} is not a 40-hex object id")
    return value


def _parse_command(text: str) -> RefCommand:
    parts = text.split(" ")
    if len(parts) != 3:
        raise GitWireError(f"malformed command {text[:200]!r}: expected '<old> <new> <ref>'")
    old = _object_id(parts[0], "old id")
    new = _object_id(parts[1], "new id")
    ref = parts[2]
    if not ref.startswith("refs/") or not check_ref_format(Ref(ref.encode("utf-8"))):
        raise GitWireError(f"invalid ref name {ref[:200]!r}")
    if old == ZERO_ID and new == ZERO_ID:
        raise GitWireError(f"command for {ref} has a zero old and a zero new id")
    return RefCommand(old=old, new=new, ref=ref)


def _parse_capabilities(raw: bytes) -> frozenset[str]:
    text = _text(raw, "capability list")
    caps = frozenset(cap for cap in text.split(" ") if cap)
    for cap in caps:
        if cap.startswith("object-format=") and cap != "object-format=sha1":
            raise GitWireError(f"unsupported {cap}: only sha1 repositories are judged")
    return caps


def parse_receive_pack(body: bytes) -> ReceivePackRequest:
    """Parse a de-chunked, decoded receive-pack request body; raises GitWireError on anything wrong."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise GitWireError("receive-pack body must be bytes")
    reader = PktReader(bytes(body))
    commands: list[RefCommand] = []
    shallow: list[str] = []
    capabilities: frozenset[str] = frozenset()
    while True:
        pkt = reader.read()
        if pkt is FLUSH:
            break
        if not isinstance(pkt, bytes):
            raise GitWireError(f"unexpected {pkt} in the command list")
        if not commands and pkt.startswith(b"shallow "):
            if len(shallow) >= MAX_SHALLOW_LINES:
                raise GitWireError(f"more than {MAX_SHALLOW_LINES} shallow lines")
            shallow.append(_object_id(_text(pkt[8:], "shallow line"), "shallow id"))
            continue
        if not commands and pkt.startswith(b"push-cert\0"):
            raise GitWireError("signed pushes (push-cert) are not supported")
        if len(commands) >= MAX_COMMANDS:
            raise GitWireError(f"more than {MAX_COMMANDS} ref updates in one push")
        if not commands:
            line, nul, caps = pkt.partition(b"\0")
            if nul:
                capabilities = _parse_capabilities(caps)
        else:
            line = pkt
            if b"\0" in line:
                raise GitWireError("NUL byte in a command after the first")
        commands.append(_parse_command(_text(line, "command")))
    if not commands:
        raise GitWireError("receive-pack request carries no ref update")

    push_options: list[str] = []
    if "push-options" in capabilities:
        while True:
            pkt = reader.read()
            if pkt is FLUSH:
                break
            if not isinstance(pkt, bytes):
                raise GitWireError(f"unexpected {pkt} in the push-options list")
            if len(push_options) >= MAX_PUSH_OPTIONS:
                raise GitWireError(f"more than {MAX_PUSH_OPTIONS} push options")
            push_options.append(_text(pkt, "push option"))

    pack = reader.remaining()
    needs_pack = any(not cmd.is_delete for cmd in commands)
    if pack and not pack.startswith(_PACK_SIGNATURE):
        raise GitWireError("data after the command list is not a packfile")
    if needs_pack and not pack:
        raise GitWireError("the push updates refs but carries no packfile")
    return ReceivePackRequest(
        commands=commands,
        capabilities=capabilities,
        push_options=push_options,
        pack=pack,
        shallow=shallow,
    )

"""report-status answers: building git's refusal, and reading the upstream's verdict per ref.

gitprotocol-pack "Report Status": ``unpack ok``, then ``ok <ref>`` / ``ng <ref> <reason>`` per
command, flush-pkt; side-band-64k wraps that whole stream in band-1 packets, then a flush-pkt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dulwich.protocol import pkt_line

from enact_proxy.gitwire.errors import GitWireError
from enact_proxy.gitwire.pktline import FLUSH, PktReader, encode_lines

RESULT_CONTENT_TYPE = "application/x-git-receive-pack-result"
DEFAULT_COLLATERAL_REASON = "Blocked by Enact: refused with the rest of this push"
_MAX_REASON = 2000
# LARGE_PACKET_MAX (65520) and the old 1000-byte limit, less the header and the band byte.
_BAND_PAYLOAD = {"side-band-64k": 65520 - 5, "side-band": 1000 - 5}


def _has(capabilities: Iterable[str], name: str) -> bool:
    return any(cap == name or cap.startswith(name + "=") for cap in capabilities)


def client_reads_report(capabilities: Iterable[str]) -> bool:
    """False when the client asked for no report-status: it would not see per-ref refusals."""
    caps = list(capabilities)
    return _has(caps, "report-status") or _has(caps, "report-status-v2")


def _one_line(reason: str) -> str:
    flat = " ".join(reason.replace("\0", " ").split())
    return flat[:_MAX_REASON] or "refused"


def sideband_wrap(data: bytes, capabilities: Iterable[str], band: int = 1) -> bytes:
    """``data`` split into side-band packets when the client asked for it, else unchanged."""
    caps = list(capabilities)
    mode = next((m for m in ("side-band-64k", "side-band") if _has(caps, m)), None)
    if mode is None:
        return data
    size = _BAND_PAYLOAD[mode]
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(pkt_line(bytes([band]) + chunk) for chunk in chunks) + pkt_line(None)


def refusal_body(
    refs: Iterable[str],
    reasons: Mapping[str, str],
    capabilities: Iterable[str],
    collateral_reason: str = DEFAULT_COLLATERAL_REASON,
) -> bytes:
    """An HTTP 200 body (``RESULT_CONTENT_TYPE``) refusing every ref of the push.

    ``refs`` in command order; ``reasons`` holds the refs refused on their own account, the
    others get ``collateral_reason``. The same lines serve report-status and report-status-v2.
    """
    lines = [b"unpack ok\n"]
    for ref in refs:
        reason = _one_line(reasons.get(ref, collateral_reason))
        lines.append(f"ng {ref} {reason}\n".encode())
    return sideband_wrap(encode_lines(lines), capabilities)


def _unwrap_sideband(body: bytes) -> bytes:
    reader = PktReader(body)
    data = bytearray()
    while not reader.at_end():
        pkt = reader.read()
        if pkt is FLUSH:
            break
        if not isinstance(pkt, bytes) or not pkt:
            raise GitWireError("malformed side-band packet in the upstream's answer")
        band, payload = pkt[0], pkt[1:]
        if band == 1:
            data += payload
        elif band == 3:
            message = payload.decode("utf-8", "replace").strip()
            raise GitWireError(f"upstream error: {message[:300]}")
        elif band != 2:
            raise GitWireError(f"unknown side-band channel {band} in the upstream's answer")
    return bytes(data)


def parse_report_status(body: bytes) -> dict[str, str]:
    """{ref: "ok" | "ng <reason>"} from the upstream's receive-pack answer (side-band or not).

    When unpacking failed upstream, refs reported ``ok`` (none should be) are marked failed too.
    """
    status_stream = body if body[4:10] == b"unpack" else _unwrap_sideband(body)
    reader = PktReader(status_stream)
    result: dict[str, str] = {}
    unpack: str | None = None
    while True:
        pkt = reader.read()
        if pkt is FLUSH:
            break
        if not isinstance(pkt, bytes):
            raise GitWireError("malformed report-status from the upstream")
        line = pkt.decode("utf-8", "replace").rstrip("\n")
        if unpack is None:
            if not line.startswith("unpack "):
                raise GitWireError("report-status from the upstream does not start with 'unpack'")
            unpack = line[len("unpack ") :]
        elif line.startswith("ok "):
            result[line[3:]] = "ok"
        elif line.startswith("ng "):
            ref, _, reason = line[3:].partition(" ")
            result[ref] = f"ng {reason}".rstrip()
        elif line.startswith("option "):
            continue  # report-status-v2 detail about the preceding ref
        else:
            raise GitWireError(f"unexpected report-status line {line[:100]!r}")
    if unpack is None:
        raise GitWireError("empty report-status from the upstream")
    if unpack != "ok":
        result = {ref: (f"ng unpack failed: {unpack}" if v == "ok" else v) for ref, v in result.items()}
    return result

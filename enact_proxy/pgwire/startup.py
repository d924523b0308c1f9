"""Which StartupMessage parameters an agent may send (no I/O).

A startup parameter is a session setting applied before any statement, so the same rule holds as for
``SET``: only harmless settings (:data:`~enact_proxy.pgwire.classify.HARMLESS_SETTINGS`) pass.
Replication connections and anything that changes role or ``search_path`` (directly or through
``options``) are refused, and so is any other setting: fail closed.
"""

from __future__ import annotations

from enact_proxy.pgwire.classify import HARMLESS_SETTINGS

CONNECTION_KEYS = frozenset({"user", "database", "application_name"})
_FALSE = frozenset({"false", "off", "no", "0"})
_UTF8 = frozenset({"utf8", "utf-8", "unicode"})


def startup_refusal(params: dict[str, str]) -> str | None:
    """Why this StartupMessage is refused, or None when it may go ahead."""
    for key, value in params.items():
        name = key.lower()
        if name in CONNECTION_KEYS or name.startswith("_pq_."):
            continue
        if name == "replication":
            if value.strip().lower() not in _FALSE:
                return "replication connections are not allowed through Enact"
            continue
        if name == "options":
            reason = _options_refusal(value)
            if reason:
                return reason
            continue
        reason = _setting_refusal(name, value)
        if reason:
            return reason
    return None


def _setting_refusal(name: str, value: str) -> str | None:
    if name == "client_encoding":
        if value.strip().strip("'\"").lower() in _UTF8:
            return None
        return f"client_encoding {value!r} is not allowed through Enact (use UTF8)"
    if name in HARMLESS_SETTINGS:
        return None
    return f"the startup setting {name!r} is not allowed through Enact"


def _options_refusal(options: str) -> str | None:
    try:
        words = split_options(options)
    except ValueError as exc:
        return f"startup options: {exc}"
    pending_c = False
    for word in words:
        if pending_c:
            setting, pending_c = word, False
        elif word == "-c":
            pending_c = True
            continue
        elif word.startswith(("-c", "--")):
            setting = word[2:]
        else:
            return f"the startup option {word!r} is not allowed through Enact"
        name, sep, value = setting.partition("=")
        if not sep:
            return f"the startup option {word!r} is not allowed through Enact"
        reason = _setting_refusal(name.strip().lower().replace("-", "_"), value)
        if reason:
            return reason
    if pending_c:
        return "startup options end with -c and no setting"
    return None


def split_options(options: str) -> list[str]:
    """PostgreSQL's split of the ``options`` parameter: whitespace separates, backslash escapes."""
    words: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if escaped:
        raise ValueError("ends with a lone backslash")
    if current:
        words.append("".join(current))
    return words

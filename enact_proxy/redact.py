"""Masking credentials before anything is written: receipts, logs, error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

MASK = "[REDACTED]"

_SECRET_NAMES = frozenset({
    "authorization", "proxy_authorization", "cookie", "set_cookie", "token", "access_token",
    "refresh_token", "id_token", "api_key", "apikey", "hapikey", "x_api_key", "password", "passwd",
    "secret", "client_secret", "private_key", "pgpassword", "credentials", "session_token",
})
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_api_key", "_apikey", "_private_key")

_SECRET_VALUES = re.compile(
    r"(?i)^(bearer|token|basic)\s+\S+$"                      # an Authorization header value
    r"|^(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}$"             # GitHub tokens
    r"|^github_pat_[A-Za-z0-9_]{20,}$"
    r"|^pat-[a-z]{2}\d-[0-9a-f-]{20,}$"                      # HubSpot private app tokens
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s]+)(@)")
# Credentials inside longer text (a note, a libpq DSN, an error message): the label stays, the value goes.
_TEXT_SECRETS = re.compile(
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|(\b(?:password|passwd|pwd)[\"']?\s*[=:]\s*[\"']?)[^\s'\"&;,]+"
    r"|()\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|pat-[a-z]{2}\d-[0-9a-f-]{20,})"
)

# Cheap test first: text with none of these cannot match any pattern above.
_MAYBE_SECRET = re.compile(r"(?i)://|bearer|token\s|basic\s|pass|pwd|gh[pousr]_|github_pat_|pat-")
_JSON_SCALARS = (str, int, float, bool, type(None))
_PLAIN = frozenset({int, float, bool, type(None)})  # exact types that can hold no secret


def is_secret_name(name: str) -> bool:
    key = name.strip().lower().replace("-", "_")
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


_secret_name = lru_cache(maxsize=4096)(is_secret_name)  # keys repeat on every receipt


class Redactor:
    """Masks secrets by key name, by value shape, and any literal secret it was told about."""

    def __init__(self, known_secrets: Iterable[str] = ()):
        self._known = sorted({s for s in known_secrets if s and len(s) >= 4}, key=len, reverse=True)
        # Policy reasons and payload values repeat a lot; the same text always scrubs the same way.
        self.scrub_text = lru_cache(maxsize=8192)(self._scrub_text)  # type: ignore[method-assign]
        self._clean = lru_cache(maxsize=8192)(self._clean_value)

    def redact(self, value: Any, path: str = "") -> tuple[Any, list[str]]:
        """A JSON-ready copy of ``value`` with secrets masked, and the paths that were masked."""
        masked: list[str] = []
        return self._walk(value, path, masked), masked

    def scrub_text(self, text: str) -> str:
        """For log lines and error messages: literal secrets, URL passwords and token shapes masked."""
        return self._scrub_text(text)

    def _scrub_text(self, text: str, maybe: bool | None = None) -> str:
        # ``maybe``: whether the caller's own pre-check matched. Putting MASK in for a known secret cannot
        # make the pre-check match where it did not (no trigger holds "[" or "]"), so one check is enough.
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MASK)
        if not (maybe if maybe is not None else _MAYBE_SECRET.search(text)):
            return text
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
        return _TEXT_SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + MASK, text)

    def _clean_value(self, value: str) -> str:
        maybe = _MAYBE_SECRET.search(value) is not None
        if maybe and _SECRET_VALUES.match(value.strip()):
            return MASK
        return self._scrub_text(value, maybe)

    def _walk(self, value: Any, path: str, masked: list[str]) -> Any:
        # Hot path (every receipt): exact types first; a path string is built only where one is needed.
        kind = type(value)
        if kind is str:
            cleaned = self._clean(value)
            if cleaned != value:
                masked.append(path)
            return cleaned
        if kind in _PLAIN:
            return value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = k if type(k) is str else str(k)
                if _secret_name(key) and v not in (None, "", MASK):
                    out[key] = MASK
                    masked.append(f"{path}.{key}" if path else key)
                elif type(v) in _PLAIN:
                    out[key] = v
                else:
                    out[key] = self._walk(v, f"{path}.{key}" if path else key, masked)
            return out
        if isinstance(value, (list, tuple)):
            return [v if type(v) in _PLAIN else self._walk(v, f"{path}[{i}]", masked) for i, v in enumerate(value)]
        if isinstance(value, str):
            return self._walk(str(value), path, masked)
        if isinstance(value, _JSON_SCALARS):
            return value
        return self._walk(str(value), path, masked)  # bytes, datetimes, decimals: as text

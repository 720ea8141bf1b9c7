"""Redaction of secrets in everything reasonperf writes or prints.

Secrets come from the environment and must never reach a file, a log or a report, but a
user can still put one where we would echo it: credentials in a URL
(``http://user:key@host``), an engine environment variable (``HF_TOKEN``), or a server
flag (``--api-key=...``). Every writer (run.json, cell.json, the study index, the engine
launch line, error lines) passes what it writes through this module.

Two layers: patterns (URL credentials, secret flags and ``NAME=value`` assignments,
``Bearer`` tokens, env mappings by name) work on any text; a ``Redactor`` built from a
spec also masks the literal secret values wherever they appear (an engine log tail or a
server error that echoes the key).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary text everywhere

# Words that make an environment variable's (or a key's) value secret.
_SECRET_WORDS = {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL",
                 "CREDENTIALS", "AUTH"}
# Flags whose value is secret: --api-key, --hf-token, --admin-api-key, --password, ...
# (by suffix, so --max-num-batched-tokens, --tokenizer or --ssl-keyfile are left alone).
_SECRET_FLAG = re.compile(r"^--(?:[\w-]*-)?(?:key|api-key|token|secret|password|passwd)$",
                          re.IGNORECASE)
_LOWER_SECRET_KEYS = {"api_key", "apikey", "token", "hf_token", "access_token", "password",
                      "passwd", "secret", "authorization"}

_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")
_QUERY_SECRET = re.compile(
    r"(?P<k>[?&](?:api[_-]?key|key|token|access_token|secret|password)=)[^&\s'\"]+",
    re.IGNORECASE)
_FLAG_VALUE = re.compile(
    r"(?P<flag>--(?:[\w-]*-)?(?:key|api-key|token|secret|password|passwd))(?P<sep>=|\s+)"
    r"(?!--)[^\s'\",]+", re.IGNORECASE)
_ENV_ASSIGN = re.compile(
    r"\b(?P<name>[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)[A-Z0-9_]*)=[^\s'\",]+")
_BEARER = re.compile(r"(?P<b>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+")


def is_secret_name(name: str) -> bool:
    """True for environment-style names such as HF_TOKEN, OPENAI_API_KEY, DB_PASSWORD."""
    words = re.split(r"[^A-Za-z0-9]+", name.upper())
    return any(w in _SECRET_WORDS for w in words)


def is_secret_flag(flag: str) -> bool:
    return bool(_SECRET_FLAG.match(flag))


def redact_url(url: str) -> str:
    """The URL without user:password and without secret query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    out = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return _QUERY_SECRET.sub(lambda m: m["k"] + MASK, out)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """env with the values of secret-looking names masked (the names stay: they tell what
    was set)."""
    return {k: MASK if is_secret_name(k) else v for k, v in env.items()}


def redact_args(args: Sequence[str]) -> list[str]:
    """A command line with the values of secret flags masked (--flag=value and --flag value)."""
    out: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        flag, sep, _value = arg.partition("=")
        if is_secret_flag(flag):
            if sep:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact_text(text: str) -> str:
    """Free text (an error line, a log line) with credentials found by pattern masked."""
    text = _URL_CREDENTIALS.sub(lambda m: m["scheme"] + MASK + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m["k"] + MASK, text)
    text = _FLAG_VALUE.sub(lambda m: m["flag"] + m["sep"] + MASK, text)
    text = _ENV_ASSIGN.sub(lambda m: m["name"] + "=" + MASK, text)
    return _BEARER.sub(lambda m: m["b"] + MASK, text)


def _secret_key(key: str) -> bool:
    """A mapping key whose string value is a secret: an env-style name (upper case, the
    last dotted part) or a well-known lower-case one. ``token_count_source`` is not."""
    last = key.rsplit(".", 1)[-1]
    if last.lower() in _LOWER_SECRET_KEYS:
        return True
    return last.isupper() and is_secret_name(last)


@dataclass(frozen=True)
class Redactor:
    """Patterns plus the literal secret values known for one run or study."""

    values: frozenset[str] = frozenset()

    @classmethod
    def from_engine_specs(cls, specs: Iterable[Any]) -> Redactor:
        """The secrets an engine spec carries (URL credentials, secret env values, secret
        flag values) and the API key in the variable it names."""
        found: set[str] = set()
        for spec in specs:
            for url in (getattr(spec, "url", None), getattr(spec, "metrics_url", None)):
                found.update(_url_secrets(url))
            for name, value in (getattr(spec, "env", None) or {}).items():
                if is_secret_name(name):
                    found.add(value)
            found.update(_arg_secrets(getattr(spec, "extra_args", None) or []))
            key_env = getattr(spec, "api_key_env", None)
            if key_env and os.environ.get(key_env):
                found.add(os.environ[key_env])
        return cls(frozenset(v for v in found if v and len(v) >= MIN_SECRET_LEN))

    def text(self, text: str) -> str:
        text = redact_text(text)
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def obj(self, obj: Any, key: str = "") -> Any:
        """A JSON-like object with every secret masked (a new object; the input is kept)."""
        if isinstance(obj, Mapping):
            if key.lower().endswith("env") and all(isinstance(v, str) for v in obj.values()):
                obj = redact_env(obj)
            return {k: MASK if isinstance(v, str) and _secret_key(str(k)) else
                    self.obj(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            if obj and all(isinstance(v, str) for v in obj) and any(
                    v.startswith("--") for v in obj):
                return [self.text(v) for v in redact_args(obj)]
            return [self.obj(v, key) for v in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj


def redact(obj: Any) -> Any:
    """Pattern-only redaction of a JSON-like object (no literal values known)."""
    return Redactor().obj(obj)


def _url_secrets(url: str | None) -> set[str]:
    if not url:
        return set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    return {v for v in (parts.password, parts.username if parts.password else None) if v}


def _arg_secrets(args: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if is_secret_flag(flag):
            if sep:
                found.add(value)
            elif i + 1 < len(args):
                found.add(args[i + 1])
    return found

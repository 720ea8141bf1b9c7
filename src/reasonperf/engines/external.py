"""An OpenAI-compatible endpoint somebody else runs: nothing to launch, only to check."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from reasonperf.engines.base import ENGINES, EngineBase
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError
from reasonperf.redact import redact_url


@ENGINES.register("external")
class ExternalEngine(EngineBase):
    """Checks at start() that {base}/models answers; picks the served model if none given."""

    kind = "external"

    def __init__(self, spec: EngineSpec, check_timeout_s: float = 10.0) -> None:
        self.spec = spec
        self.base_url = spec.base_url()
        self.metrics_url: str | None = spec.derived_metrics_url(self.base_url)
        self.served_model: str = spec.served_model_name or spec.model or ""
        self.check_timeout_s = check_timeout_s
        self._started = False
        self._models: list[str] = []

    @property
    def started(self) -> bool:
        return self._started

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.spec.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def start(self, log_dir: Path | None = None) -> None:
        url, basic = _split_credentials(f"{self.base_url}/models")
        request = urllib.request.Request(url, headers={**basic, **self._headers()})
        try:
            with urllib.request.urlopen(request, timeout=self.check_timeout_s) as resp:
                body = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise UsageError(
                    f"endpoint {self.base_url} refused the API key (HTTP {exc.code}); "
                    f"set ${self.spec.api_key_env} or engine.api_key_env"
                ) from None
            raise UsageError(
                f"endpoint {self.base_url} is unreachable: HTTP {exc.code} on GET /models; "
                "check --endpoint"
            ) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(
                f"endpoint {self.base_url} is unreachable: {reason}; check --endpoint"
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        self._models = [m["id"] for m in data or [] if isinstance(m, dict) and "id" in m]
        if not self.served_model:
            if not self._models:
                raise UsageError(
                    f"endpoint {self.base_url} lists no models at /models; pass --model NAME"
                )
            self.served_model = self._models[0]
        self._started = True

    def stop(self) -> None:
        self._started = False

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": None,
            "command": [],
            "model": self.spec.model or self.served_model,
            "served_model": self.served_model,
            "base_url": redact_url(self.base_url),
            "metrics_url": redact_url(self.metrics_url) if self.metrics_url else None,
            "env": {},
            "models": list(self._models),
        }


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """urllib does not read user:password from a URL: strip them, send them as Basic auth
    (aiohttp, which sends the requests, does the same by itself)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    token = base64.b64encode(user_pass.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}

"""An OpenAI-compatible endpoint somebody else runs: nothing to launch, only to check."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from reasonperf.engines.base import ENGINES, EngineBase
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError


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
        url = f"{self.base_url}/models"
        request = urllib.request.Request(url, headers=self._headers())
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
            "base_url": self.base_url,
            "metrics_url": self.metrics_url,
            "env": {},
            "models": list(self._models),
        }

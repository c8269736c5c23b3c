"""The local dataset cache: where converted datasets live, atomic writes, manifests and quarantine.

Layout (root: ``$QRNN_DATA`` or ``~/.cache/qrnn-qiskit``)::

    <root>/<dataset>/manifest.json   written last: its presence marks a complete conversion
    <root>/<dataset>/*.npz|*.json.gz the converted arrays the loaders read
    <root>/quarantine/               downloads whose checksums did not match (never used)
    <root>/tmp/                      downloads in progress (removed when a fetch ends, even on
    error)
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QRNNError
from ..fileio import atomic_write_bytes

ENV_VAR = "QRNN_DATA"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def data_root() -> Path:
    """Cache root: ``$QRNN_DATA`` if set, else ``~/.cache/qrnn-qiskit``."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "qrnn-qiskit"


def dataset_dir(name: str) -> Path:
    return data_root() / name


def is_cached(name: str) -> bool:
    """Whether dataset ``name`` has a complete cache (its manifest is written last)."""
    return (dataset_dir(name) / "manifest.json").exists()


@contextlib.contextmanager
def staging() -> Iterator[Path]:
    """A temporary folder inside the cache root for one fetch; removed afterwards, so an interrupted
    fetch leaves nothing half-written in the cache."""
    (data_root() / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_root() / "tmp") as tmp:
        yield Path(tmp)


def fetch_command(name: str) -> str:
    return f"qrnn data fetch {name}"


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save arrays as a compressed ``.npz`` atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def write_json_gz(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, gzip.compress(json.dumps(obj).encode(), compresslevel=6, mtime=0))


def write_manifest(name: str, info: Mapping[str, Any]) -> None:
    """Record what was converted from which package; written after the data files."""
    record = {
        "dataset": name,
        "format": FORMAT_VERSION,
        "converted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
    }
    atomic_write_bytes(
        dataset_dir(name) / MANIFEST, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    )


def read_manifest(name: str) -> dict[str, Any]:
    """The dataset's manifest; a clear error (with the fetch command) when it was never fetched."""
    path = dataset_dir(name) / MANIFEST
    if not path.exists():
        raise QRNNError(f"dataset {name!r} is not fetched (no {path}); run: {fetch_command(name)}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        manifest = None
    if not isinstance(manifest, dict):
        raise QRNNError(
            f"the {name} cache is corrupted ({path} is unreadable); run: {fetch_command(name)} "
            "--force"
        ) from None
    if manifest.get("format") != FORMAT_VERSION:
        raise QRNNError(
            f"the {name} cache has format {manifest.get('format')!r}, expected {FORMAT_VERSION}; "
            f"run: {fetch_command(name)} --force"
        )
    return manifest


def is_fetched(name: str) -> bool:
    return (dataset_dir(name) / MANIFEST).exists()


def read_npz(
    name: str, filename: str, expected: Mapping[str, tuple[np.dtype, int]]
) -> dict[str, np.ndarray]:
    """Load ``<dataset>/<filename>`` fully, checking that every expected array exists with its dtype
    and rank.

    Unreadable files (truncated, bad CRC) and missing or mistyped arrays are a "corrupted cache"
    error.
    """
    read_manifest(name)
    path = dataset_dir(name) / filename
    corrupted = f"the {name} cache is corrupted ({path}"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in expected}
    except FileNotFoundError:
        raise QRNNError(f"{corrupted} is missing); run: {fetch_command(name)} --force") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise QRNNError(
            f"{corrupted}: {str(exc).splitlines()[0][:120]}); run: {fetch_command(name)} --force"
        ) from None
    for key, (dtype, ndim) in expected.items():
        if arrays[key].dtype != dtype or arrays[key].ndim != ndim:
            raise QRNNError(
                f"{corrupted}: array {key} is {arrays[key].dtype}[{arrays[key].ndim}d], expected "
                f"{np.dtype(dtype)}[{ndim}d]); run: {fetch_command(name)} --force"
            )
    return arrays


def read_json_gz(name: str, filename: str) -> Any:
    path = dataset_dir(name) / filename
    try:
        return json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise QRNNError(
            f"the {name} cache is corrupted ({path} is missing); run: {fetch_command(name)} --force"
        ) from None
    except (OSError, EOFError, ValueError) as exc:
        raise QRNNError(
            f"the {name} cache is corrupted ({path}: {str(exc)[:120]}); "
            f"run: {fetch_command(name)} --force"
        ) from None


def quarantine(path: Path, *, keep_original: bool = False) -> Path:
    """Move (or copy, for a user's own file) ``path`` into ``<root>/quarantine`` under a unique
    name."""
    folder = data_root() / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}"
    counter = 1
    while target.exists():
        target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{counter}-{path.name}"
        counter += 1
    if keep_original:
        shutil.copy2(path, target)
    else:
        shutil.move(str(path), target)
    return target


def cache_size(name: str) -> int:
    """Bytes used by a dataset's cache folder (0 when absent)."""
    folder = dataset_dir(name)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


PINS = "pins.json"


def pinned_digest(key: str, digest: str) -> tuple[str, bool]:
    """Trust on first use: the digest recorded for ``key`` in ``<root>/pins.json`` and whether this
    call recorded it (then it is ``digest``). Pins outlive ``fetch --force``; delete the file to
    re-pin."""
    path = data_root() / PINS
    try:
        pins = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        raise QRNNError(
            f"{path} is unreadable; delete it to record the datasets' checksums again"
        ) from None
    if key in pins:
        return str(pins[key]), False
    pins[key] = digest
    atomic_write_bytes(path, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())
    return digest, True

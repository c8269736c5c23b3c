"""Crash-safe files: atomic writes (a temporary file in the same folder, fsync, rename), fsync'ed
appends to JSON-lines logs, and a tolerant reader for those logs (a torn last line is skipped and
reported, never fatal). Files are created with the process's umask (group-shareable run folders),
not 0600."""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import QRNNError

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_error(path: Path, error: OSError) -> QRNNError:
    """A one-line error for a failed write that names the cause and the fix (full disk, read-only
    folder, a folder or a file in the way); the old file, if any, is untouched."""
    reason = error.strerror or str(error)
    if error.errno in _FULL:
        fix = "the disk (or the file-size limit) is full: free space and run the command again"
    elif error.errno in _DENIED:
        fix = "the location is not writable: fix its permissions or choose another"
    elif error.errno == errno.EISDIR or path.is_dir():
        fix = "that is a folder: name a file"
    elif error.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "a file is in the way of a folder on that path: choose another location"
    else:
        fix = "choose a writable location"
    return QRNNError(f"cannot write {path}: {reason}; {fix} (nothing was overwritten)")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename: readers see
    the old file or the new one, never a part. Failures are a one-line :class:`QRNNError`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files as one commit: every new version is written to a temporary file and
    fsync'ed first, then all are renamed into place. A failed write (full disk, read-only folder)
    changes none of them; a kill between the renames leaves each file old or new, never a part."""
    staged: list[tuple[str, Path]] = []
    path = Path(".")
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
            staged.append((tmp, path))
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
        staged = []
        for folder in {Path(p).parent for p in files}:
            _fsync_dir(folder)
    except OSError as error:
        raise write_error(path, error) from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_jsonl(path: Path, record: dict) -> int:
    """Append one JSON record as a line and fsync it (file and folder) before returning; returns
    the file's size before the append (:func:`truncate_to` takes the record back). A failed append
    leaves the file as it was (a part of the line written before the failure is cut off)."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True) + "\n"
    size = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        size = 0 if new else path.stat().st_size
        with open(path, "a") as handle:
            try:
                if handle.tell() and not _ends_with_newline(path):
                    handle.write("\n")  # a torn last line stays one (skipped) line
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                truncate_to(path, size)
                raise
        if new:
            _fsync_dir(path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    return size


def truncate_to(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (an append taken back; needs no free space)."""
    try:
        with open(path, "rb+") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        pass  # the reader skips a torn line; a resume drops records past its checkpoint


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _stderr(message: str) -> None:
    print(f"qrnn: warning: {message}", file=sys.stderr)


def read_jsonl(path: Path, *, warn: Callable[[str], None] | None = _stderr) -> list[dict]:
    """The JSON-object lines of ``path`` (none if it does not exist). Lines that are not JSON
    objects — a line torn by a kill, garbage — are skipped and reported through ``warn``."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise QRNNError(f"cannot read {path}: {error.strerror or error}") from None
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    if bad and warn is not None:
        where = "the last line" if bad == [len(text.splitlines())] else f"lines {bad[:5]}"
        warn(f"{path}: skipped {len(bad)} unreadable record(s) ({where}; a write cut short?)")
    return records


def rewrite_jsonl(path: Path, records: list[dict]) -> None:
    """Replace a JSON-lines log atomically by ``records``."""
    atomic_write_bytes(
        path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    )


def read_json(path: Path, what: str, fix: str) -> Any:
    """A JSON file, or a one-line :class:`QRNNError` naming ``what`` it is and the ``fix``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise QRNNError(f"{path} does not exist ({what}); {fix}") from None
    except IsADirectoryError:
        raise QRNNError(f"{path} is a folder, not {what}; {fix}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise QRNNError(f"{path} is not valid JSON ({what}: {error}); {fix}") from None
    except OSError as error:
        raise QRNNError(f"cannot read {path} ({what}): {error.strerror or error}") from None


def stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files atomic writes left behind in ``folder`` (a process killed mid-write)."""
    try:
        return sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
    except OSError:
        return []


def make_folder(path: Path, what: str = "folder") -> Path:
    """``path`` as an existing folder (created with its parents), or a one-line error when a file is
    in the way or the location is not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise QRNNError(f"{path} is a file, not a {what}; choose another location")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(path, error) from None
    return path


def save_figure(figure: Any, path: Path, **savefig: Any) -> Path:
    """Render a Matplotlib figure as PNG and write it atomically to exactly ``path`` (Matplotlib
    itself would append ``.png`` to a name without one, and leave a partial file on a full disk)."""
    import io

    path = Path(path)
    if path.is_dir():
        raise QRNNError(f"{path} is a folder; name a PNG file, e.g. {path / 'plot.png'}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    atomic_write_bytes(path, buffer.getvalue())
    return path

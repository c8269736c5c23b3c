"""Where a study lives: an Optuna RDB storage from a database URL, SQLite by default.

``sqlite:///runs/sweeps/NAME/study.db`` (beside the trials' run directories) serves the workers of
one machine; any database URL Optuna's ``RDBStorage`` supports (``postgresql://…``,
``mysql+pymysql://…``, with its driver installed) serves workers on many machines. Every storage
keeps heartbeats of running trials, so a worker killed mid-trial (kill -9, a lost machine) is
noticed after the sweep's grace period and its trial is retried (Optuna's
``RetryHeartbeatStaleTrialCallback``): the retry resumes the killed trial's run directory.

SQLite and several processes: Python's sqlite3 starts a transaction only at its first write, so two
workers can both read a trial as waiting and both claim it. Here every SQLite transaction begins
``BEGIN IMMEDIATE`` (it takes the write lock before reading), and the first creation of the file's
tables and of a study happens under a file lock beside the database, so workers started together
on one machine never race. (SQLite on a network file system is still not safe: use a database
server there.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor

from ..errors import QRNNError

SQLITE_TIMEOUT = 60.0  # seconds a worker waits for another's write lock
INSTALL = "pip install 'qrnn-qiskit[sweep]' (or: pip install optuna)"


def require_optuna():
    """The optuna module, or a one-line error naming the install."""
    try:
        import optuna
    except ImportError:
        raise QRNNError(f"qrnn sweep needs Optuna: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # workers print one line per trial
    return optuna


def default_url(root: Path) -> str:
    """The SQLite file beside the runs of a sweep folder."""
    return f"sqlite:///{(root / 'study.db').as_posix()}"


def shown(url: str) -> str:
    """``url`` with any password hidden (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable URLs are shown as given
        return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory SQLite)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite database while tables and studies are created (other
    URLs: nothing to hold; database servers serialise creation themselves)."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        lock_descriptor(handle.fileno())  # exclusive, waits for the holder (filelock: portable)
        try:
            yield
        finally:
            unlock_descriptor(handle.fileno())


def _sqlite_engine(path: Path) -> dict[str, Any]:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: the driver starts no transaction of its own; SQLAlchemy's "begin"
        # (hooked in open_storage) emits BEGIN IMMEDIATE
        return sqlite3.connect(
            str(path), timeout=SQLITE_TIMEOUT, isolation_level=None, check_same_thread=False
        )

    return {"creator": connect}


def open_storage(url: str, *, heartbeat: int = 10, grace: int = 120, create: bool = True):
    """An Optuna ``RDBStorage`` at ``url`` with heartbeats and retries of killed trials; every
    reason it cannot be opened (a bad URL, a missing driver, a missing folder, a server that does
    not answer) is a one-line error. ``create=False``: a SQLite file must exist already."""
    optuna = require_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    try:
        path = sqlite_path(url)
    except Exception as error:  # noqa: BLE001 - sqlalchemy's URL parser
        raise QRNNError(f"cannot open the study storage {shown(url)}: {_first(error)}") from None
    if path is not None:
        if not create and not path.exists():
            raise QRNNError(f"no study storage at {path} (run qrnn sweep FILE first, or pass "
                            "--storage URL)")  # fmt: skip
        if not path.parent.is_dir():
            raise QRNNError(
                f"cannot open the study storage {shown(url)}: the folder {path.parent} does not "
                "exist"
            )
    kwargs = _sqlite_engine(path) if path is not None else {}
    try:
        with creation_lock(url), quiet():
            storage = RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    inherit_intermediate_values=True
                ),
            )
    except QRNNError:
        raise
    except Exception as error:  # noqa: BLE001 - drivers, servers and URLs fail in many ways
        raise QRNNError(f"cannot open the study storage {shown(url)}: {_first(error)}") from None
    if path is not None:
        from sqlalchemy import event

        event.listen(storage.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    del optuna
    return storage


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A database error while a worker or a report uses the study (a read-only ``study.db``, a
    server gone away) as a one-line error naming the storage and the fix."""
    optuna = require_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, sqlite3.Error) as error:
        cause: BaseException = error
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        path = sqlite_path(url)
        fix = (
            f"{path} must be a writable file in a writable folder (fix its permissions, or copy "
            "the study elsewhere and pass --root or --storage)"
            if path is not None
            else "check the database server and its permissions"
        )
        raise QRNNError(f"the study storage {shown(url)} failed: {_first(cause)}; {fix}") from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and retries are marked experimental)."""
    optuna = require_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _first(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text[:200]

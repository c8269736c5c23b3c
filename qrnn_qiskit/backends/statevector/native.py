"""The native CPU kernels' process-wide runtime: ``native.c`` compiled on first use and loaded
through ctypes, and the thread pool that splits a batch.

Everything process-wide lives in one :class:`NativeRuntime` object, :data:`RUNTIME`:

* the shared library, built with the system C compiler (``$CC``, else ``cc``) with ``-march=native``
  into ``$QRNN_NATIVE_CACHE`` (default ``~/.cache/qrnn-qiskit/native``), keyed by the source, the
  flags and the CPU, so it is compiled once per machine. Without a compiler, or with
  ``QRNN_NATIVE=0``, :meth:`NativeRuntime.load` returns ``None`` and engines keep their torch
  kernels; :meth:`NativeRuntime.status` says why;
* the thread budget (:meth:`NativeRuntime.set_threads`, else ``$QRNN_NATIVE_THREADS`` as read when
  the runtime was created, else ``torch.get_num_threads()``), resolved once per kernel call;
* the thread pool, dropped in a forked child by an ``os.register_at_fork`` hook (the child has none
  of its parent's threads) and rebuilt there on first use. ctypes releases the GIL while a kernel
  runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCES = ("native.c", "native_body.h", "native_lanes.h")
FLAGS = [
    "-O3",
    "-march=native",
    "-std=gnu99",
    "-fPIC",
    "-shared",
    # reassociation lets the compiler vectorize the reductions; -ffast-math is avoided on purpose
    # (linking a shared object with it can switch the whole process to flush-denormals-to-zero)
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fassociative-math",
    "-fno-signed-zeros",
]
ABI = 7
MIN_QUBITS = 3  # a state must fill one 32-byte vector of float32 planes
# Amplitudes per thread below which a batch is not split: handing work to a pool thread costs ~0.1
# ms, more than a whole n = 8, B = 32 step (measured on 2 cores: splitting it made it 2× slower, n =
# 12, B = 32 faster).
MIN_AMPLITUDES_PER_THREAD = 1 << 16


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$QRNN_NATIVE_CACHE`` or
    ``~/.cache/qrnn-qiskit/native``."""
    root = os.environ.get("QRNN_NATIVE_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qrnn-qiskit" / "native"


def _cpu_key() -> str:
    """The CPU's feature flags (``-march=native`` code must not run on another CPU sharing a
    cache)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(target: Path, compiler: str) -> None:
    here = Path(__file__).resolve().parent
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        cmd = [compiler, *FLAGS, "-o", str(out), str(here / "native.c"), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = done.stderr.splitlines()
            errors = [line for line in lines if "error" in line] or lines
            detail = f": {errors[0].strip()}" if errors else ""
            raise RuntimeError(f"compiling with {compiler} failed (exit {done.returncode}){detail}")
        os.replace(out, target)  # atomic: concurrent builders race harmlessly


def _declare(library: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    signatures = {
        "qrnn_step": [p, p, p, p, p, i64, i64],
        "qrnn_step_back": [p, p, p, p, p, p, p, p, i64, i64],
        "qrnn_readouts": [p, p, p, i64, i64],
        "qrnn_readouts_vjp": [p, p, p, p, i64, i64],
    }
    for suffix in ("_f32", "_f64"):
        for name, argtypes in signatures.items():
            fn = getattr(library, name + suffix)
            fn.argtypes = argtypes
            fn.restype = None


class NativeRuntime:
    """The compiled library, the thread budget and the thread pool of one process (see the module
    docstring). Use the process's instance :data:`RUNTIME`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._library: ctypes.CDLL | None = None
        self._failure: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self.pools_built = 0  # pools this process built (a forked child starts again from 0)
        env = os.environ.get("QRNN_NATIVE_THREADS", "")
        self._env_threads = int(env) if env.isdigit() and int(env) >= 1 else None
        self._threads: int | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.after_fork_in_child)

    # ------------------------------------------------------------------------------------ library
    def load(self) -> ctypes.CDLL | None:
        """The compiled kernels (built on the first call), or ``None`` where they cannot be used."""
        with self._lock:
            if self._library is not None or self._failure is not None:
                return self._library
            if os.environ.get("QRNN_NATIVE", "1") == "0":
                self._failure = "disabled by QRNN_NATIVE=0"
                return None
            name = os.environ.get("CC", "cc")
            compiler = shutil.which(name)
            if compiler is None:
                self._failure = f"no C compiler ({name!r} not found)"
                return None
            here = Path(__file__).resolve().parent
            digest = hashlib.sha256()
            for source in SOURCES:
                digest.update((here / source).read_bytes())
            digest.update(" ".join([compiler, *FLAGS, _cpu_key(), platform.machine()]).encode())
            target = cache_dir() / f"qrnn_native_{digest.hexdigest()[:16]}.so"
            try:
                if not target.exists():
                    _build(target, compiler)
                library = ctypes.CDLL(str(target))
                if library.qrnn_native_abi() != ABI:
                    raise RuntimeError(
                        f"{target} has ABI {library.qrnn_native_abi()}, expected {ABI}"
                    )
            except (OSError, RuntimeError) as error:
                self._failure = f"native kernels unavailable: {error}"
                return None
            _declare(library)
            self._library = library
            return library

    def status(self) -> str:
        """One line: whether the native kernels are in use, or why not."""
        return "native CPU kernels loaded" if self.load() is not None else str(self._failure)

    # ------------------------------------------------------------------------------------ threads
    def set_threads(self, threads: int | None) -> None:
        """Threads the kernels may split a batch over (``None``: ``$QRNN_NATIVE_THREADS`` if it was
        set, else follow ``torch.get_num_threads()``). With torch itself at one thread its OpenMP
        workers do not spin on the cores the kernels use (docs/performance.md)."""
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self._threads = threads

    def threads_setting(self) -> int | None:
        """What :meth:`set_threads` was last given (``None``: not set, or reset)."""
        return self._threads

    def max_threads(self) -> int:
        """The thread budget now (see :meth:`set_threads`)."""
        if self._threads is not None:
            return self._threads
        if self._env_threads is not None:
            return self._env_threads
        return torch.get_num_threads()

    def threads_for(self, batch: int, dim: int) -> int:
        """How many threads share a batch of ``batch`` states of ``dim`` amplitudes (resolve it once
        per call and pass it on: scratch buffers and the split must agree)."""
        return max(1, min(self.max_threads(), batch, batch * dim // MIN_AMPLITUDES_PER_THREAD))

    def run_split(self, threads: int, batch: int, call: Callable[[int, int, int], None]) -> None:
        """``call(k, b0, b1)`` for ``threads`` contiguous chunks k of the batch, on the pool."""
        if threads == 1:
            call(0, 0, batch)
            return
        pool = self._pool
        if pool is None or self._pool_size < threads:  # rare: lock only to (re)build
            with self._lock:
                if self._pool is None or self._pool_size < threads:
                    if self._pool is not None:
                        self._pool.shutdown(wait=False)
                    self._pool = ThreadPoolExecutor(
                        max_workers=threads, thread_name_prefix="qrnn-native"
                    )
                    self._pool_size = threads
                    self.pools_built += 1
                pool = self._pool
        bounds = [batch * k // threads for k in range(threads + 1)]
        futures = [
            pool.submit(call, k, bounds[k], bounds[k + 1])
            for k in range(threads)
            if bounds[k] < bounds[k + 1]
        ]
        for future in futures:
            future.result()

    def after_fork_in_child(self) -> None:
        """Forget the parent's pool (its threads do not exist here) and its lock state."""
        self._lock = threading.Lock()
        self._pool = None
        self._pool_size = 0
        self.pools_built = 0

    @property
    def pool_threads(self) -> int:
        """Workers of the current pool (0: none built in this process)."""
        return self._pool_size if self._pool is not None else 0


RUNTIME = NativeRuntime()


def load() -> ctypes.CDLL | None:
    """The compiled kernels of this process (:meth:`NativeRuntime.load`)."""
    return RUNTIME.load()


def status() -> str:
    """Whether the native kernels are in use, or why not (:meth:`NativeRuntime.status`)."""
    return RUNTIME.status()


def set_threads(threads: int | None) -> None:
    """The kernels' thread budget (:meth:`NativeRuntime.set_threads`)."""
    RUNTIME.set_threads(threads)


def max_threads() -> int:
    """The kernels' thread budget now (:meth:`NativeRuntime.max_threads`)."""
    return RUNTIME.max_threads()


__all__ = [
    "MIN_QUBITS",
    "RUNTIME",
    "NativeRuntime",
    "cache_dir",
    "load",
    "max_threads",
    "set_threads",
    "status",
]

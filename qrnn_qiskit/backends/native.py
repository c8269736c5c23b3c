"""Native CPU kernels for the statevector engine: ``native.c`` compiled on first use, called through
ctypes.

Each sample's state is copied into planar form (real and imaginary planes, in cache for n ≤ 12) and
walked there with 32-byte vectors: one 2×2 pass per qubit (no Kronecker blocks), a gather per
entangler permutation, the reversible backward together with the per-qubit blocks K_q of the
gradient, and one-qubit reduced density matrices for readouts made of one-qubit terms, and their
gradient. A large batch is split across ``torch.get_num_threads()`` Python threads (or
:func:`set_threads`, ``$QRNN_NATIVE_THREADS``); ctypes releases the GIL while a kernel runs.

The shared library is built with the system C compiler (``$CC``, else ``cc``) with ``-march=native``
into ``$QRNN_NATIVE_CACHE`` (default ``~/.cache/qrnn-qiskit/native``), keyed by the source, the
flags and the CPU, so it is compiled once per machine. Without a compiler, or with
``QRNN_NATIVE=0``, :func:`load` returns ``None`` and the engine keeps its torch path; :func:`status`
says why.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCES = ("native.c", "native_body.h")
_FLAGS = [
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
_ABI = 6
MIN_QUBITS = 3  # a state must fill one 32-byte vector of float32 planes
# Amplitudes per thread below which a batch is not split: handing work to a pool thread costs ~0.1
# ms, more than a whole n = 8, B = 32 step (measured on 2 cores: splitting it made it 2× slower, n =
# 12, B = 32 faster).
MIN_AMPLITUDES_PER_THREAD = 1 << 16

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failure: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = (
    0  # a forked child (DataLoader workers, multiprocessing) must not reuse its parent's pool
)


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$QRNN_NATIVE_CACHE`` or
    ``~/.cache/qrnn-qiskit/native``."""
    root = os.environ.get("QRNN_NATIVE_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qrnn-qiskit" / "native"


def _cpu_key() -> str:
    """The CPU's feature flags (``-march=native`` code must not run on another CPU sharing the
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
        cmd = [compiler, *_FLAGS, "-o", str(out), str(here / "native.c"), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [
                line for line in done.stderr.splitlines() if "error" in line
            ] or done.stderr.splitlines()
            detail = f": {errors[0].strip()}" if errors else ""
            raise RuntimeError(f"compiling with {compiler} failed (exit {done.returncode}){detail}")
        os.replace(out, target)  # atomic: concurrent builders race harmlessly


def load() -> ctypes.CDLL | None:
    """The compiled kernels (built on first call), or ``None`` when they cannot be used here."""
    global _library, _failure
    with _lock:
        if _library is not None or _failure is not None:
            return _library
        if os.environ.get("QRNN_NATIVE", "1") == "0":
            _failure = "disabled by QRNN_NATIVE=0"
            return None
        compiler = shutil.which(os.environ.get("CC", "cc"))
        if compiler is None:
            _failure = f"no C compiler ({os.environ.get('CC', 'cc')!r} not found)"
            return None
        here = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for name in _SOURCES:
            digest.update((here / name).read_bytes())
        digest.update(" ".join([compiler, *_FLAGS, _cpu_key(), platform.machine()]).encode())
        target = cache_dir() / f"qrnn_native_{digest.hexdigest()[:16]}.so"
        try:
            if not target.exists():
                _build(target, compiler)
            library = ctypes.CDLL(str(target))
            if library.qrnn_native_abi() != _ABI:
                raise RuntimeError(f"{target} has ABI {library.qrnn_native_abi()}, expected {_ABI}")
        except (OSError, RuntimeError) as error:
            _failure = f"native kernels unavailable: {error}"
            return None
        _declare(library)
        _library = library
        return _library


def status() -> str:
    """One line: whether the native kernels are in use, or why not."""
    library = load()
    return "native CPU kernels loaded" if library is not None else str(_failure)


def _declare(library: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("_f32", "_f64"):
        getattr(library, "qrnn_forward" + suffix).argtypes = [
            p,
            p,
            i64,
            i64,
            i32,
            i32,
            p,
            p,
            p,
            p,
            p,
            p,
        ]
        getattr(library, "qrnn_backward" + suffix).argtypes = [
            p,
            p,
            p,
            p,
            i64,
            i64,
            i32,
            i32,
            p,
            p,
            p,
            p,
            p,
            p,
            p,
        ]
        getattr(library, "qrnn_rdm1" + suffix).argtypes = [p, i64, i64, i32, p, p]
        getattr(library, "qrnn_apply_sum" + suffix).argtypes = [p, p, i64, i64, i32, p, p]
        getattr(library, "qrnn_bank" + suffix).argtypes = [
            p,
            i64,
            i64,
            i32,
            i32,
            p,
            p,
            p,
            p,
            i32,
            p,
            p,
        ]
        getattr(library, "qrnn_fuse" + suffix).argtypes = [p, i64, i64, i32, p, i32, i32, p]
        getattr(library, "qrnn_rotation_grads" + suffix).argtypes = [
            p,
            i64,
            i64,
            i32,
            p,
            i32,
            i32,
            p,
            i32,
            p,
            p,
            p,
            p,
            i32,
            p,
        ]
        for name in (
            "qrnn_forward",
            "qrnn_backward",
            "qrnn_rdm1",
            "qrnn_apply_sum",
            "qrnn_bank",
            "qrnn_fuse",
            "qrnn_rotation_grads",
        ):
            getattr(library, name + suffix).restype = None


def _suffix(dtype: torch.dtype) -> str:
    if dtype == torch.complex64:
        return "_f32"
    if dtype == torch.complex128:
        return "_f64"
    raise TypeError(f"native kernels take complex64 or complex128 states, got {dtype}")


_thread_limit: int | None = None


def set_threads(threads: int | None) -> None:
    """Threads the native kernels may split a batch over (``None``: follow
    ``torch.get_num_threads()``, or ``$QRNN_NATIVE_THREADS`` when set). With torch itself at one
    thread, its OpenMP workers do not spin on the cores the kernels use: at n = 12, B = 32 a step
    took 4.0 ms that way on 2 cores, 5.2 ms with both at 2."""
    global _thread_limit
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    _thread_limit = threads


def max_threads() -> int:
    """The thread budget of the native kernels now (see :func:`set_threads`)."""
    if _thread_limit is not None:
        return _thread_limit
    env = os.environ.get("QRNN_NATIVE_THREADS", "")
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return torch.get_num_threads()


def _threads(batch: int, dim: int) -> int:
    """How many threads share a batch of ``batch`` states of ``dim`` amplitudes."""
    return max(1, min(max_threads(), batch, batch * dim // MIN_AMPLITUDES_PER_THREAD))


def _run_split(batch: int, dim: int, call) -> None:
    """``call(k, b0, b1)`` for chunks k of the batch, split across up to ``torch.get_num_threads()``
    threads."""
    global _pool, _pool_size, _pool_pid
    threads = _threads(batch, dim)
    if threads == 1:
        call(0, 0, batch)
        return
    if (
        _pool is None or _pool_size < threads or _pool_pid != os.getpid()
    ):  # rare: lock only to (re)build
        with _lock:
            if _pool is None or _pool_size < threads or _pool_pid != os.getpid():
                if _pool is not None and _pool_pid == os.getpid():
                    _pool.shutdown(wait=False)
                _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qrnn-native")
                _pool_size, _pool_pid = threads, os.getpid()
    bounds = [batch * k // threads for k in range(threads + 1)]
    futures = [
        _pool.submit(call, k, bounds[k], bounds[k + 1])
        for k in range(threads)
        if bounds[k] < bounds[k + 1]
    ]
    for future in futures:
        future.result()


def _pointers(tensors: Sequence[torch.Tensor | None]) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(tensors)))(
        *[t.data_ptr() if t is not None else None for t in tensors]
    )


class NativeProgram:
    """A compiled circuit's structure for the native kernels.

    Args:
        n_qubits: register size.
        has_mats: per segment, whether it has a single-qubit layer.
        perms, inverse_perms, phases: per segment, the entangler's permutation, its inverse and its
        phases
            (``None`` where trivial), as in ``StatevectorEngine``.
        table: [segments·n, width] op-bank indices of every (segment, qubit) gate chain,
        identity-padded. rotations: (chain, position in chain, rotation index) [R] each, and the
        rotations' Pauli generators
            [R, 2, 2]; ``n_rot`` rotations in all.
        bank: the op bank's recipe as in ``StatevectorEngine._bank``: per rotation its parameter,
        coefficient,
            offset and generator G (R(θ) = cos(θ/2)·I + sin(θ/2)·G), then the constant matrices.
    """

    def __init__(
        self,
        library: ctypes.CDLL,
        n_qubits: int,
        has_mats: Sequence[bool],
        perms: Sequence[torch.Tensor | None],
        inverse_perms: Sequence[torch.Tensor | None],
        phases: Sequence[torch.Tensor | None],
        dtype: torch.dtype,
        table: torch.Tensor,
        rotations: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        n_rot: int,
        bank: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        self.n_qubits = n_qubits
        self.n_segments = len(has_mats)
        self.dtype = dtype
        self.n_rot = n_rot
        self._has = [bool(h) for h in has_mats]
        self._keep = [
            t.contiguous() if t is not None else None for t in (*perms, *inverse_perms, *phases)
        ]
        self._table = table.contiguous()
        self._rotations = tuple(t.contiguous() for t in rotations)
        self._recipe = tuple(t.contiguous() for t in bank)
        self._bind(library)

    def _bind(self, library: ctypes.CDLL) -> None:
        """The ctypes side: the library and pointer tables into the kept tensors (rebuilt after
        unpickling)."""
        self._lib = library
        self._suffix = _suffix(self.dtype)
        s = self.n_segments
        self._perms = _pointers(self._keep[:s])
        self._inverse_perms = _pointers(self._keep[s : 2 * s])
        self._phases = _pointers(self._keep[2 * s :])
        self._has_mats = (ctypes.c_uint8 * max(1, s))(*[int(h) for h in self._has])

    def __getstate__(self) -> dict:  # ctypes objects do not pickle (copy.deepcopy, multiprocessing)
        return {
            "n_qubits": self.n_qubits,
            "n_segments": self.n_segments,
            "dtype": self.dtype,
            "n_rot": self.n_rot,
            "_has": self._has,
            "_keep": self._keep,
            "_table": self._table,
            "_rotations": self._rotations,
            "_recipe": self._recipe,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        library = load()
        if library is None:
            raise RuntimeError(
                f"cannot restore an engine that uses the native kernels here: {status()}"
            )
        self._bind(library)

    def _fn(self, name: str):
        return getattr(self._lib, name + self._suffix)

    @staticmethod
    def _scratch(state: torch.Tensor, planes: int) -> torch.Tensor:
        """Per thread chunk (see ``_run_split``), ``planes`` real planes of 2^n values."""
        rows = _threads(state.shape[0], state.shape[1])
        return torch.empty(rows, planes * state.shape[1], dtype=state.real.dtype)

    def forward(
        self, state: torch.Tensor, mats: torch.Tensor, readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(U(θ) state, ρ) for a [B, N] state; ``mats`` [B, segments, n, 2, 2] holds each qubit's
        fused matrix; with ``readouts``, ρ [B, n, 2, 2] are the output's one-qubit reduced density
        matrices."""
        state, mats = state.contiguous(), mats.contiguous()
        out = torch.empty_like(state)
        rho = (
            torch.empty(state.shape[0], self.n_qubits, 2, 2, dtype=state.dtype)
            if readouts
            else None
        )
        scratch = self._scratch(state, 4)
        fn, n, s = self._fn("qrnn_forward"), self.n_qubits, self.n_segments

        def call(k: int, b0: int, b1: int) -> None:
            fn(
                state.data_ptr(),
                out.data_ptr(),
                b0,
                b1,
                n,
                s,
                mats.data_ptr(),
                self._has_mats,
                self._perms,
                self._phases,
                rho.data_ptr() if rho is not None else None,
                scratch[k].data_ptr(),
            )

        _run_split(state.shape[0], state.shape[1], call)
        return out, rho

    def backward(
        self,
        state: torch.Tensor,
        grad: torch.Tensor | None,
        mats: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ψ_in, ∂L/∂ψ_in, K [B, segments, n, 2, 2]) from the step's output state and the gradient
        of its output state (``None``: zero); ``weights`` [B, n, 2, 2] first add Σ_q W_q ψ to that
        gradient (the readouts' part)."""
        state, mats = state.contiguous(), mats.contiguous()
        grad = grad.contiguous() if grad is not None else None
        weights = weights.contiguous() if weights is not None else None
        psi, g = torch.empty_like(state), torch.empty_like(state)
        batch = state.shape[0]
        blocks = torch.empty(batch, self.n_segments, self.n_qubits, 2, 2, dtype=state.dtype)
        scratch = self._scratch(state, 6)
        fn, n, s = self._fn("qrnn_backward"), self.n_qubits, self.n_segments

        def call(k: int, b0: int, b1: int) -> None:
            fn(
                state.data_ptr(),
                grad.data_ptr() if grad is not None else None,
                psi.data_ptr(),
                g.data_ptr(),
                b0,
                b1,
                n,
                s,
                mats.data_ptr(),
                self._has_mats,
                self._inverse_perms,
                self._phases,
                weights.data_ptr() if weights is not None else None,
                blocks.data_ptr(),
                scratch[k].data_ptr(),
            )

        _run_split(batch, state.shape[1], call)
        return psi, g, blocks

    def rdm1(self, state: torch.Tensor) -> torch.Tensor:
        """Every qubit's reduced density matrix ρ_q[a, c] = Σ ψ_a ψ_c*: [B, n, 2, 2]."""
        state = state.contiguous()
        rho = torch.empty(state.shape[0], self.n_qubits, 2, 2, dtype=state.dtype)
        scratch = self._scratch(state, 2)
        fn, n = self._fn("qrnn_rdm1"), self.n_qubits
        _run_split(
            state.shape[0],
            state.shape[1],
            lambda k, b0, b1: fn(
                state.data_ptr(), b0, b1, n, rho.data_ptr(), scratch[k].data_ptr()
            ),
        )
        return rho

    def apply_sum(self, state: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Σ_q W_q acting on qubit q of ``state``, for per-qubit matrices ``weights`` [B, n, 2,
        2]."""
        state, weights = state.contiguous(), weights.contiguous()
        out = torch.empty_like(state)
        scratch = self._scratch(state, 4)
        fn, n = self._fn("qrnn_apply_sum"), self.n_qubits
        _run_split(
            state.shape[0],
            state.shape[1],
            lambda k, b0, b1: fn(
                state.data_ptr(),
                out.data_ptr(),
                b0,
                b1,
                n,
                weights.data_ptr(),
                scratch[k].data_ptr(),
            ),
        )
        return out

    def fuse(self, bank: torch.Tensor) -> torch.Tensor:
        """Every gate chain multiplied out, from the op bank [B, ops, 2, 2]: [B, segments, n, 2,
        2]."""
        bank = bank.contiguous()
        chains, width = self._table.shape
        mats = torch.empty(bank.shape[0], self.n_segments, self.n_qubits, 2, 2, dtype=bank.dtype)
        self._fn("qrnn_fuse")(
            bank.data_ptr(),
            0,
            bank.shape[0],
            bank.shape[1],
            self._table.data_ptr(),
            chains,
            width,
            mats.data_ptr(),
        )
        return mats

    def rotation_grads(self, bank: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """∂L/∂(each rotation's angle) [B, n_rot] from the op bank and the K blocks of
        ``backward``."""
        bank, blocks = bank.contiguous(), blocks.contiguous()
        chains, width = self._table.shape
        rows, positions, ops, paulis = self._rotations
        grad = torch.zeros(bank.shape[0], self.n_rot, dtype=bank.real.dtype)
        self._fn("qrnn_rotation_grads")(
            bank.data_ptr(),
            0,
            bank.shape[0],
            bank.shape[1],
            self._table.data_ptr(),
            chains,
            width,
            blocks.data_ptr(),
            rows.numel(),
            rows.data_ptr(),
            positions.data_ptr(),
            ops.data_ptr(),
            paulis.data_ptr(),
            self.n_rot,
            grad.data_ptr(),
        )
        return grad

    def bank(self, angles: torch.Tensor) -> torch.Tensor:
        """The op bank [B, ops, 2, 2] for angles [B, P] (no autograd)."""
        angles = angles.contiguous()
        param, coef, offset, gen, consts = self._recipe
        n_rot, n_const = param.numel(), consts.shape[0]
        bank = torch.empty(angles.shape[0], n_rot + n_const, 2, 2, dtype=self.dtype)
        self._fn("qrnn_bank")(
            angles.data_ptr(),
            0,
            angles.shape[0],
            angles.shape[1],
            n_rot,
            param.data_ptr(),
            coef.data_ptr(),
            offset.data_ptr(),
            gen.data_ptr(),
            n_const,
            consts.data_ptr(),
            bank.data_ptr(),
        )
        return bank

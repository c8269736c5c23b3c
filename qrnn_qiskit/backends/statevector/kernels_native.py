"""Native CPU kernels of the statevector engine: the programs lowered to one ``Plan`` of
``native.c``.

Each sample's state is copied into planar form (real and imaginary planes, in cache for n ≤ 12) and
walked there with 32-byte vectors: one 2×2 pass per qubit with a non-empty chain (a real 2×2 where
the chain is real), the diagonal as one separable phase plus one factor per multi-qubit Z term, a
gather per entangler permutation, and the readouts (one-qubit terms from every qubit's reduced
density matrix, other Pauli terms directly). One call runs a whole step — op bank (vectorised
sin/cos), chain products, gates, readouts — and one call its reversible backward with every angle's
gradient; the plan's tables are built once per engine, so a call passes only the tensors of the
step. A large batch is split over the runtime's thread pool (``native.RUNTIME``).

The global phase is not applied here: the engine facade applies it (``engine.py``).
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import torch

from .gates import PAULI
from .native import RUNTIME
from .program import ReadoutProgram, StepProgram

_p, _i32 = ctypes.c_void_p, ctypes.c_int32


class Plan(ctypes.Structure):
    """``Plan`` of native.c (field for field)."""

    _fields_ = [
        ("n", _i32), ("n_seg", _i32), ("n_params", _i32), ("n_rot", _i32), ("n_ops", _i32),
        ("width", _i32),
        ("rot_ptr", _p), ("rot_param", _p), ("rot_coef", _p), ("rot_offset", _p), ("rot_axis", _p),
        ("consts", _p), ("table", _p), ("chain_flags", _p),
        ("perm", _p), ("inverse_perm", _p), ("phase", _p),
        ("diag_ptr", _p), ("diag_single", _p), ("diag_rot", _p), ("diag_mask", _p),
        ("n_chain_rot", _i32), ("grad_row", _p), ("grad_pos", _p), ("grad_rot", _p),
        ("n_read", _i32), ("n_terms", _i32), ("rho_qubits", _p),
        ("n_rz", _i32), ("n_zw", _i32), ("n_tz", _i32),
        ("rz_from", _p), ("rz_to", _p), ("zw_from", _p), ("zw_to", _p),
        ("tz_from", _p), ("tz_to", _p),
        ("rz_coef", _p), ("zw_coef", _p), ("tz_coef", _p),
        ("term_x", _p), ("term_z", _p), ("term_y", _p),
        ("lanes", _i32),
    ]  # fmt: skip


ACTIVE, REAL, ROTATIONS = 1, 2, 4  # chain flags
# registers up to this size run with the batch in the vector lanes (native_lanes.h); measured faster
# than the amplitude-lane kernels on one thread at B = 64 up to here
LANES_MAX_QUBITS = int(os.environ.get("QRNN_NATIVE_LANES_MAX", "6"))
AXIS = {"rx": 0, "ry": 1, "rz": 2}


def _suffix(dtype: torch.dtype) -> str:
    if dtype == torch.complex64:
        return "_f32"
    if dtype == torch.complex128:
        return "_f64"
    raise TypeError(f"native kernels take complex64 or complex128 states, got {dtype}")


def _array(values, dtype) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(values, dtype=dtype))
    return out if out.size else np.zeros(1, dtype=dtype)  # never a null pointer


def lower_step(program: StepProgram, real: np.dtype) -> dict[str, np.ndarray | int | list]:
    """The step program's tables for a ``Plan`` (numpy arrays; REAL tables in ``real``)."""
    n = program.n_qubits
    segments = program.segments
    rotations = program.rotations
    ptr, params, coefs = [0], [], []
    for rot in rotations:
        for p, c in rot.angle.terms:
            params.append(p)
            coefs.append(c)
        ptr.append(len(params))
    width = max((seg.width for seg in segments), default=1) or 1
    identity = program.identity
    table, flags = [], []
    for seg in segments:
        for chain in seg.chains:
            table.append(list(chain) + [identity] * (width - len(chain)))
            is_real = all(
                rotations[i].kind == "ry"
                if i < program.n_rotations
                else not np.any(np.abs(program.constants[i - program.n_rotations].imag) > 1e-15)
                for i in chain
            )
            has_rotation = any(i < program.n_rotations for i in chain)
            flags.append((ACTIVE if chain else 0) | (REAL if is_real else 0)
                         | (ROTATIONS if has_rotation else 0))  # fmt: skip
    diag_ptr, diag_single, diag_rot, diag_mask = [0], [], [], []
    for seg in segments:
        terms = sorted(seg.diagonal, key=lambda t: bin(t[1]).count("1") > 1)
        diag_single.append(sum(1 for _, m in terms if bin(m).count("1") == 1))
        diag_rot += [r for r, _ in terms]
        diag_mask += [m for _, m in terms]
        diag_ptr.append(len(diag_rot))
    grad_row, grad_pos, grad_rot = [], [], []
    for si, seg in enumerate(segments):
        for r, q, j in seg.rotations:
            grad_row.append(si * n + q)
            grad_pos.append(j)
            grad_rot.append(r)
    consts = np.concatenate([program.constants, np.eye(2)[None]])
    cplx = np.complex64 if real == np.float32 else np.complex128
    return {
        "rot_ptr": _array(ptr, np.int32),
        "rot_param": _array(params, np.int32),
        "rot_coef": _array(coefs, np.float64),
        "rot_offset": _array([r.angle.offset for r in rotations], np.float64),
        "rot_axis": _array([AXIS[r.kind] for r in rotations], np.int8),
        "consts": _array(consts.astype(cplx).view(real).reshape(-1), real),
        "width": width,
        "table": _array(table, np.int32),
        "chain_flags": _array(flags, np.uint8),
        "perm": [None if s.perm is None else _array(s.perm, np.int64) for s in segments],
        "inverse_perm": [
            None if s.inverse_perm is None else _array(s.inverse_perm, np.int64) for s in segments
        ],
        "phase": [
            None if s.phase is None else _array(s.phase.astype(cplx).view(real), real)
            for s in segments
        ],
        "diag_ptr": _array(diag_ptr, np.int32),
        "diag_single": _array(diag_single, np.int32),
        "diag_rot": _array(diag_rot, np.int32),
        "diag_mask": _array(diag_mask, np.int64),
        "grad_row": _array(grad_row, np.int32),
        "grad_pos": _array(grad_pos, np.int32),
        "grad_rot": _array(grad_rot, np.int32),
        "n_chain_rot": len(grad_rot),
    }


def lower_readouts(readout: ReadoutProgram) -> dict[str, np.ndarray | int]:
    """The readout program's tables: one-qubit terms (support ≤ 1) as linear maps between the
    qubits' density matrices (8 reals each) and the readouts, other terms as Pauli masks."""
    n, count = readout.n_qubits, readout.n_observables
    coef = readout.coefficients
    rho_to_z = np.zeros((8 * n, count))
    z_to_w = np.zeros((count, 8 * n))
    rho_qubits = np.zeros(n, dtype=np.uint8)
    xs, zs, ys, rows = [], [], [], []
    for t in range(readout.n_terms):
        support = readout.support(t)
        if len(support) <= 1:
            q = support[0] if support else 0
            pauli = readout.matrix(t, [q]) if support else PAULI["I"]
            rho_qubits[q] = 1
            for a in range(2):
                for c in range(2):
                    e = 8 * q + 2 * (2 * a + c)
                    # Re Tr(ρP) = Σ_ac Re ρ_ac Re P_ca - Im ρ_ac Im P_ca; W = 2 Σ_t w_t P_t
                    rho_to_z[e] += coef[t] * pauli[c, a].real
                    rho_to_z[e + 1] -= coef[t] * pauli[c, a].imag
                    z_to_w[:, e] += 2 * coef[t] * pauli[a, c].real
                    z_to_w[:, e + 1] += 2 * coef[t] * pauli[a, c].imag
        else:
            x, z = readout.x_masks[t], readout.z_masks[t]
            xs.append(x)
            zs.append(z)
            ys.append(bin(x & z).count("1") % 4)
            rows.append(coef[t])

    def sparse(matrix: np.ndarray, prefix: str) -> dict:
        rows, cols = np.nonzero(np.abs(matrix) > 0)
        return {
            f"n_{prefix}": len(rows),
            f"{prefix}_from": _array(rows, np.int32),
            f"{prefix}_to": _array(cols, np.int32),
            f"{prefix}_coef": _array(matrix[rows, cols], np.float64),
        }

    term_to_z = np.array(rows).reshape(len(rows), count)
    return {
        "n_read": count,
        "n_terms": len(xs),
        "rho_qubits": _array(rho_qubits, np.uint8),
        **sparse(rho_to_z, "rz"),
        **sparse(z_to_w, "zw"),
        **sparse(term_to_z, "tz"),
        "term_x": _array(xs, np.int64),
        "term_z": _array(zs, np.int64),
        "term_y": _array(ys, np.int32),
    }


class NativeKernels:
    """The step and readout programs lowered for ``native.c`` (CPU only). Same method names as
    :class:`~.kernels_torch.TorchKernels`: ``forward``, ``readouts``, ``readouts_vjp``,
    ``backward``. Pickles and deep-copies (the ctypes plan is rebuilt on load)."""

    name = "native"

    def __init__(self, program: StepProgram, readout: ReadoutProgram, *, dtype: torch.dtype):
        if RUNTIME.load() is None:
            raise RuntimeError(RUNTIME.status())
        self.n_qubits = program.n_qubits
        self.dim = program.dim
        self.n_params = program.n_params
        self.n_segments = len(program.segments)
        self.n_rot = program.n_rotations
        self.n_ops = program.identity + 1
        self.n_readouts = readout.n_observables
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        real = np.float32 if dtype == torch.complex64 else np.float64
        self._tables = {**lower_step(program, real), **lower_readouts(readout)}
        self._bind()

    def _bind(self) -> None:
        """The ctypes side: the library, the entry points and the plan pointing into the tables."""
        self._lib = RUNTIME.load()
        suffix = _suffix(self.dtype)
        self._step = getattr(self._lib, "qrnn_step" + suffix)
        self._step_back = getattr(self._lib, "qrnn_step_back" + suffix)
        self._readouts = getattr(self._lib, "qrnn_readouts" + suffix)
        self._readouts_vjp = getattr(self._lib, "qrnn_readouts_vjp" + suffix)
        t = self._tables
        s = self.n_segments

        def pointers(arrays) -> ctypes.Array:
            return (ctypes.c_void_p * max(1, s))(
                *[a.ctypes.data if a is not None else None for a in arrays]
            )

        self._pointer_arrays = [pointers(t[k]) for k in ("perm", "inverse_perm", "phase")]
        fields = {k: v.ctypes.data for k, v in t.items() if isinstance(v, np.ndarray)}
        self._plan = Plan(
            n=self.n_qubits, n_seg=s, n_params=self.n_params, n_rot=self.n_rot, n_ops=self.n_ops,
            width=t["width"],
            perm=ctypes.addressof(self._pointer_arrays[0]),
            inverse_perm=ctypes.addressof(self._pointer_arrays[1]),
            phase=ctypes.addressof(self._pointer_arrays[2]),
            n_chain_rot=t["n_chain_rot"], n_read=t["n_read"], n_terms=t["n_terms"],
            n_rz=t["n_rz"], n_zw=t["n_zw"], n_tz=t["n_tz"],
            lanes=int(self.n_qubits <= LANES_MAX_QUBITS),
            **{k: v for k, v in fields.items() if k in dict(Plan._fields_)},
        )  # fmt: skip
        self._plan_ref = ctypes.addressof(self._plan)

    def __getstate__(self) -> dict:  # ctypes objects do not pickle (copy.deepcopy, multiprocessing)
        skip = ("_lib", "_step", "_step_back", "_readouts", "_readouts_vjp", "_pointer_arrays")
        skip += ("_plan", "_plan_ref")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if RUNTIME.load() is None:
            raise RuntimeError(
                f"cannot restore an engine that uses the native kernels here: {RUNTIME.status()}"
            )
        self._bind()

    def _run(self, batch: int, call) -> None:
        threads = RUNTIME.threads_for(batch, self.dim)
        if threads == 1:
            call(0, 0, batch)
        else:
            RUNTIME.run_split(threads, batch, call)

    # ------------------------------------------------------------------------------------ forward
    def forward(
        self, state: torch.Tensor, angles: torch.Tensor, readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(V·state, its readouts or ``None``) for angles [B, P]."""
        state, angles = state.contiguous(), angles.detach().contiguous()
        batch = state.shape[0]
        out = torch.empty_like(state)
        values = torch.empty(batch, self.n_readouts, dtype=self.real_dtype) if readouts else None
        fn, plan, a, s, o = (
            self._step,
            self._plan_ref,
            angles.data_ptr(),
            state.data_ptr(),
            out.data_ptr(),
        )
        z = values.data_ptr() if values is not None else None
        self._run(batch, lambda k, b0, b1: fn(plan, a, s, o, z, b0, b1))
        return out, values

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        state = state.contiguous()
        batch = state.shape[0]
        values = torch.empty(batch, self.n_readouts, dtype=self.real_dtype)
        fn, plan, s, z = self._readouts, self._plan_ref, state.data_ptr(), values.data_ptr()
        self._run(batch, lambda k, b0, b1: fn(plan, s, z, b0, b1))
        return values

    # ------------------------------------------------------------------------------------ backward
    def readouts_vjp(self, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂ψ of L = Σ_k grad_k ⟨O_k⟩."""
        state, grad = state.contiguous(), grad.detach().to(self.real_dtype).contiguous()
        out = torch.empty_like(state)
        fn, plan, s, g, o = (
            self._readouts_vjp,
            self._plan_ref,
            state.data_ptr(),
            grad.data_ptr(),
            out.data_ptr(),
        )
        self._run(state.shape[0], lambda k, b0, b1: fn(plan, s, g, o, b0, b1))
        return out

    def backward(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor | None,
        readout_grad: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ψ_in, ∂L/∂ψ_in, ∂L/∂angles) from the output ``state`` of V, the gradient ``grad`` of the
        output state (``None``: zero) and ``readout_grad`` of its readouts (``None``: none read)."""
        state, angles = state.contiguous(), angles.detach().contiguous()
        grad = grad.contiguous() if grad is not None else None
        if readout_grad is not None:
            readout_grad = readout_grad.detach().to(self.real_dtype).contiguous()
        batch = state.shape[0]
        psi, g = torch.empty_like(state), torch.empty_like(state)
        grad_angles = torch.empty(batch, self.n_params, dtype=angles.dtype)
        fn, plan = self._step_back, self._plan_ref
        args = (
            angles.data_ptr(), state.data_ptr(), grad.data_ptr() if grad is not None else None,
            readout_grad.data_ptr() if readout_grad is not None else None, psi.data_ptr(),
            g.data_ptr(), grad_angles.data_ptr(),
        )  # fmt: skip
        self._run(batch, lambda k, b0, b1: fn(plan, *args, b0, b1))
        return psi, g, grad_angles


__all__ = ["NativeKernels", "Plan", "lower_readouts", "lower_step"]

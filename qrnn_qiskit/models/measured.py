"""The measured QRNN (``--model mqrnn``): a model whose definition is its dynamic circuit
(:mod:`qrnn_qiskit.circuits.measured`), trained exactly as a mixed state.

Per step t: U(θ_t) on the data register, then a weak (ancilla, coupling α) or projective (+ reset)
measurement of the measured qubits M into bits s_t ∈ {0,1}^m. The controller, an MLP of the input
embedding alone, writes angle *sets* per step from which the bits of the previous step select θ in
real time: ``linear`` θ = a(x_t) + Σ_r b_r(x_t)·s_{t−1,r}; ``table`` θ = c_{s_{t−1}}(x_t);
``none`` θ = a(x_t). The head reads what shot averages estimate: E[(−1)^{s_{t,r}}] per measured
qubit and step (m features), optionally with ⟨Z_q⟩ of the data register after the step
(``final_z``: a terminal Z measurement; one circuit gives it for the last step only).

Exact simulation (values and gradients of the expected loss over all outcome histories). θ_{t+1}
depends on the last step's fed-forward bits only, so the register is carried as 2^k unnormalised
density matrices ρ_s, one per fed-forward outcome s (k bits; tensor [B, 2^k, 2ⁿ, 2ⁿ]):

    σ     = Σ_s U(θ(x_{t+1}, s)) ρ_s U(θ(x_{t+1}, s))†         (then the noise hook's channels)
    ρ'_o  = K_o σ K_o†   for every outcome o ∈ {0,1}^m            (Kraus K_o = ⊗_r K^{(r)}_{o_r})
    E[(−1)^{s_r}] = Σ_o (−1)^{o_r} Tr ρ'_o;   ρ_next,s = Σ_{o: fed bits of o = s} ρ'_o

Outcome index o = Σ_r o_r·2^r (bit r = measured qubit M[r]); the fed-forward bits are r < k, so s =
o mod 2^k. U(θ) per (sample, block) is the statevector engine (compiled from the Qiskit step
circuit) applied to the identity basis; everything is plain torch autograd, α included (its Kraus
operators are written analytically; ``tests/test_measured.py`` checks them against the ones derived
from the Qiskit coupling circuit, and the whole simulation against a density-matrix walk of the
built dynamic circuit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..backends import StatevectorEngine
from ..circuits import QRNNSpec, readout_observables, step_circuit
from ..circuits.measured import (
    MeasurementSpec,
    check_coupling,
    measured_circuit,
)
from ..errors import QRNNError
from .config import MeasuredConfig, parse_qubits  # noqa: F401 (re-exported)
from .controller import Controller, ControllerConfig


# ------------------------------------------------------------------------------------ noise hook
@dataclass(frozen=True)
class Channel:
    """A CPTP map on ``qubits`` of the data register given by Kraus operators (2^q × 2^q, Qiskit
    order: bit j of a local index = ``qubits[j]``)."""

    qubits: tuple[int, ...]
    kraus: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        ops = tuple(np.asarray(k, dtype=complex) for k in self.kraus)
        d = 1 << len(self.qubits)
        if not ops or any(k.shape != (d, d) for k in ops):
            raise QRNNError(f"a channel on {len(self.qubits)} qubits needs {d}×{d} Kraus operators")
        total = sum(k.conj().T @ k for k in ops)
        if not np.allclose(total, np.eye(d), atol=1e-8):
            raise QRNNError("channel Kraus operators are not trace preserving (Σ K†K ≠ I)")
        object.__setattr__(self, "qubits", tuple(self.qubits))
        object.__setattr__(self, "kraus", ops)

    def embedded(self, n_qubits: int) -> np.ndarray:
        """The Kraus operators on the whole register [J, 2ⁿ, 2ⁿ]."""
        if any(not 0 <= q < n_qubits for q in self.qubits) or len(set(self.qubits)) != len(
            self.qubits
        ):
            raise QRNNError(f"channel qubits {list(self.qubits)} outside 0..{n_qubits - 1}")
        dim = 1 << n_qubits
        index = np.arange(dim)
        local = sum(((index >> q) & 1) << j for j, q in enumerate(self.qubits))
        mask = sum(1 << q for q in self.qubits)
        rest = index & ~mask
        same = rest[:, None] == rest[None, :]
        return np.stack([np.where(same, k[local[:, None], local[None, :]], 0) for k in self.kraus])


def depolarizing(p: float, qubit: int) -> Channel:
    """ρ → (1 − p)ρ + p·I/2 on one qubit."""
    paulis = [
        np.eye(2),
        np.array([[0, 1], [1, 0]]),
        np.array([[0, -1j], [1j, 0]]),
        np.diag([1, -1]),
    ]
    weights = [1 - 3 * p / 4] + [p / 4] * 3
    return Channel((qubit,), tuple(math.sqrt(w) * s for w, s in zip(weights, paulis, strict=True)))


def amplitude_damping(gamma: float, qubit: int) -> Channel:
    """|1⟩ decays to |0⟩ with probability γ."""
    k0 = np.array([[1, 0], [0, math.sqrt(1 - gamma)]])
    k1 = np.array([[0, math.sqrt(gamma)], [0, 0]])
    return Channel((qubit,), (k0, k1))


@dataclass(frozen=True)
class StepNoise:
    """Noise inside the exact simulation, per step: ``after_unitary`` channels on σ (after U, before
    the measurement), ``after_measure`` channels on every outcome block (the data register idling
    through the measurement window), ``confusion`` [m, 2, 2] with confusion[r, observed, true]: the
    classical readout error of bit r (the controller and the head see the observed bits);
    ``coupling`` [m] (weak measurement only): the parameter p_r of a two-qubit depolarizing channel
    on (data qubit M[r], its ancilla) right after the coupling, simulated exactly as the instrument
    ρ_o = (1 − p)·K_o ρ K_o† + (p/2)·Tr_q(ρ) ⊗ I/2 (with probability p the ancilla's bit is random
    and the data qubit is replaced by I/2, together)."""

    after_unitary: Sequence[Channel] = ()
    after_measure: Sequence[Channel] = ()
    confusion: np.ndarray | None = field(default=None)
    coupling: Sequence[float] = ()

    @property
    def empty(self) -> bool:
        return (
            not self.after_unitary
            and not self.after_measure
            and self.confusion is None
            and not any(self.coupling)
        )


# ------------------------------------------------------------------------------- the simulation
def weak_kraus_torch(alpha: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Kraus operators [m, 2 outcomes, 2, 2] of weak measurements with coupling angles ``alpha``
    [m] (differentiable): K_s = diag(k_s(+1), k_s(−1)) with k_0(λ) = (e^{−iαλ/2} − i e^{iαλ/2})/2,
    k_1(λ) = (e^{−iαλ/2} + i e^{iαλ/2})/2 (λ = +1 for |0⟩), from H, RZZ(α), S†, H on the ancilla."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    lam = torch.tensor([1.0, -1.0], dtype=real, device=alpha.device)
    half = alpha.to(real)[:, None] * lam / 2  # [m, 2]
    minus = torch.complex(torch.cos(half), -torch.sin(half))  # e^{−iαλ/2}
    plus = torch.complex(-torch.sin(half), torch.cos(half))  # i·e^{iαλ/2}
    k = torch.stack([(minus - plus) / 2, (minus + plus) / 2], dim=1)  # [m, 2, 2 (λ)]
    return torch.diag_embed(k).to(dtype)


def projective_kraus_torch(m: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """[m, 2, 2, 2]: K_s = |0⟩⟨s| (measure, then reset) for every measured qubit."""
    k = torch.zeros(2, 2, 2, dtype=dtype, device=device)
    k[0, 0, 0] = 1.0
    k[1, 0, 1] = 1.0
    return k.expand(m, 2, 2, 2)


def apply_outcomes(rho: torch.Tensor, kraus: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """Split blocks [B, S, D, D] by a measurement of ``qubit`` with Kraus pair [2, 2, 2]:
    [B, 2·S, D, D], the new outcome the most significant bit of the block index."""
    b, s, d, _ = rho.shape
    hi, lo = 1 << (n - 1 - qubit), 1 << qubit
    view = rho.reshape(b, s, hi, 2, lo, hi, 2, lo)
    if kraus.dim() == 4:  # [2 outcomes, J Kraus operators per outcome, 2, 2]: an instrument
        out = torch.einsum("ojac,bshcltdu,ojed->boshalteu", kraus, view, kraus.conj())
        return out.reshape(b, 2 * s, d, d)
    out = torch.einsum("oac,bshcltdu,oed->boshalteu", kraus, view, kraus.conj())
    return out.reshape(b, 2 * s, d, d)


def apply_channel(rho: torch.Tensor, kraus: torch.Tensor) -> torch.Tensor:
    """Σ_j K_j ρ K_j† for register-wide Kraus operators [J, D, D] on ρ [..., D, D]."""
    shape = rho.shape
    flat = rho.reshape(-1, shape[-2], shape[-1])
    out = torch.einsum("jab,nbc,jdc->nad", kraus, flat, kraus.conj())
    return out.reshape(shape)


def local_superop(kraus: torch.Tensor) -> torch.Tensor:
    """The superoperator [4^k, 4^k] of Kraus operators [J, 2^k, 2^k] acting on row-major vec(ρ):
    S[(a, b), (c, d)] = Σ_j K_j[a, c]·conj(K_j[b, d])."""
    j, d, _ = kraus.shape
    return torch.einsum("jac,jbd->abcd", kraus, kraus.conj()).reshape(d * d, d * d)


def apply_superop(
    rho: torch.Tensor, superop: torch.Tensor, qubits: Sequence[int], n: int
) -> torch.Tensor:
    """A channel given by its local superoperator [4^k, 4^k] on ``qubits`` (bit j of a local index
    = ``qubits[j]``) of ρ [..., D, D], without embedding it in the register (cost ∝ 4^k·D²)."""
    shape = rho.shape
    view = rho.reshape(-1, *([2] * (2 * n)))  # axis 1 + (n − 1 − q): row bit q; + n: column
    local = list(reversed(qubits))  # the local index's most significant bit first
    rows = [1 + (n - 1 - q) for q in local]
    cols = [1 + n + (n - 1 - q) for q in local]
    rest = [a for a in range(1, 2 * n + 1) if a not in rows and a not in cols]
    order = [0, *rest, *rows, *cols]
    moved = view.permute(order)
    out = (moved.reshape(-1, superop.shape[0]) @ superop.t()).reshape(moved.shape)
    return out.permute([order.index(a) for a in range(2 * n + 1)]).reshape(shape)


def apply_local(rho: torch.Tensor, kraus: torch.Tensor, qubits: Sequence[int], n: int):
    """Σ_j K_j ρ K_j† for Kraus operators [J, 2^k, 2^k] on ``qubits`` of ρ [..., D, D]."""
    return apply_superop(rho, local_superop(kraus), qubits, n)


def replace_qubit(rho: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """Tr_q(ρ) ⊗ I/2 on ``qubit`` of blocks [B, S, D, D]."""
    b, s, d, _ = rho.shape
    hi, lo = 1 << (n - 1 - qubit), 1 << qubit
    view = rho.reshape(b, s, hi, 2, lo, hi, 2, lo)
    traced = torch.diagonal(view, dim1=3, dim2=6).sum(-1) / 2  # [b, s, hi, lo, hi, lo]
    eye = torch.eye(2, dtype=rho.dtype, device=rho.device)
    return torch.einsum("bshlgm,ac->bshalgcm", traced, eye).reshape(b, s, d, d)


def apply_confusion(rho: torch.Tensor, confusion: torch.Tensor, m: int) -> torch.Tensor:
    """Outcome blocks [B, 2^m, D, D] relabelled by readout errors: observed block o gets
    Σ_true Π_r confusion[r, o_r, true_r]·ρ_true."""
    b, _, d, _ = rho.shape
    view = rho.reshape(b, *([2] * m), d, d)
    for r in range(m):
        pos = 1 + (m - 1 - r)  # bit r of the block index
        view = torch.movedim(torch.tensordot(confusion[r], view, dims=([1], [pos])), 0, pos)
    return view.reshape(b, 1 << m, d, d)


def bit_table(bits: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[2^bits, bits]: bit r of every outcome index."""
    index = torch.arange(1 << bits)
    return ((index[:, None] >> torch.arange(bits)) & 1).to(dtype)


class MeasuredSimulator:
    """The exact density-matrix simulation of the measured QRNN (see the module docstring) for
    given angles; the core and the tests share it."""

    def __init__(
        self,
        spec: QRNNSpec,
        measurement: MeasurementSpec,
        dtype: torch.dtype = torch.complex64,
        noise: StepNoise | None = None,
        final_z: bool = False,
    ) -> None:
        if spec.n_qubits > 6:
            raise QRNNError(
                f"the measured QRNN's exact simulation carries 2^k density matrices of 2^n × 2^n; "
                f"it supports n <= 6 qubits, got {spec.n_qubits}"
            )
        self.spec, self.measurement, self.dtype = spec, measurement, dtype
        self.real = torch.float64 if dtype == torch.complex128 else torch.float32
        self.n, self.dim = spec.n_qubits, 1 << spec.n_qubits
        self.engine = StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)
        self.final_z = final_z
        self._basis: torch.Tensor | None = None
        m = measurement.m
        self.signs = 1.0 - 2.0 * bit_table(m, self.real)  # [2^m, m]
        self.z_signs = 1.0 - 2.0 * bit_table(self.n, self.real)  # [D, n]
        self.fed_bits = bit_table(measurement.bits, self.real)  # [2^k, k]
        self.noise = noise or StepNoise()
        self._after_unitary = [self._local(c) for c in self.noise.after_unitary]
        self._after_measure = [self._local(c) for c in self.noise.after_measure]
        self._confusion = None
        if self.noise.confusion is not None:
            c = np.asarray(self.noise.confusion, dtype=float)
            if c.shape != (m, 2, 2) or not np.allclose(c.sum(axis=1), 1.0) or (c < 0).any():
                raise QRNNError(
                    f"readout confusion must be [m={m}, 2, 2] with columns summing to 1"
                )
            self._confusion = torch.tensor(c, dtype=self.dtype)
        self._coupling = None
        if any(self.noise.coupling):
            p = np.asarray(self.noise.coupling, dtype=float)
            if measurement.kind != "weak":
                raise QRNNError("coupling noise needs weak measurement (an ancilla per bit)")
            if p.shape != (m,) or (p < 0).any() or (p > 16 / 15).any():
                raise QRNNError(f"coupling noise must be [m={m}] depolarizing p in [0, 16/15]")
            self._coupling = torch.tensor(p, dtype=self.real)

    @property
    def n_features(self) -> int:
        return self.measurement.m + (self.n if self.final_z else 0)

    def _local(self, channel: Channel) -> tuple[tuple[int, ...], torch.Tensor]:
        qubits = channel.qubits
        if any(not 0 <= q < self.n for q in qubits) or len(set(qubits)) != len(qubits):
            raise QRNNError(f"channel qubits {list(qubits)} outside 0..{self.n - 1}")
        return qubits, local_superop(torch.tensor(np.stack(channel.kraus), dtype=self.dtype))

    def _apply(self, rho: torch.Tensor, channel: tuple) -> torch.Tensor:
        return apply_superop(rho, channel[1], channel[0], self.n)

    def initial(self, batch: int) -> torch.Tensor:
        """|0…0⟩⟨0…0| as one block: [B, 1, D, D]."""
        rho = torch.zeros(batch, 1, self.dim, self.dim, dtype=self.dtype)
        rho[:, :, 0, 0] = 1.0
        return rho

    def block_angles(self, sets: torch.Tensor, blocks: int) -> torch.Tensor:
        """Angles [B, S, P] of the ``blocks`` fed-forward outcomes from the host's angle sets
        [B, A, P] (one block, s = 0, at the first step: nothing was measured yet)."""
        ff = self.measurement.feedforward
        if ff == "none" or blocks == 1:
            return sets[:, :1]
        if ff == "table":
            return sets
        return sets[:, :1] + torch.einsum("sk,bkp->bsp", self.fed_bits.to(sets.dtype), sets[:, 1:])

    def unitaries(self, angles: torch.Tensor) -> torch.Tensor:
        """Uᵀ(θ) [B, S, D, D] for angles [B, S, P]: the engine applied to the identity basis
        (row j of each block is U|j⟩, i.e. the transpose of U)."""
        b, s, p = angles.shape
        d = self.dim
        if self._basis is None or self._basis.shape[0] != b * s * d:
            self._basis = torch.eye(d, dtype=self.dtype).repeat(b * s, 1)
        rows = angles.reshape(b * s, p).repeat_interleave(d, dim=0)
        return self.engine.step(self._basis, rows).reshape(b, s, d, d)

    def kraus(self, alpha: torch.Tensor | None) -> torch.Tensor:
        m = self.measurement.m
        if self.measurement.kind == "projective":
            return projective_kraus_torch(m, self.dtype)
        if alpha is None or alpha.shape != (m,):
            raise QRNNError(f"weak measurement needs {m} coupling angles")
        kraus = weak_kraus_torch(alpha, self.dtype)
        if self._coupling is None:
            return kraus
        # the instrument with a depolarized coupling: per outcome √(1−p)·K_o and √(p/4)·|a⟩⟨b|
        p = self._coupling.to(alpha.device)
        keep = torch.sqrt(1 - p).to(self.dtype)[:, None, None, None] * kraus  # [m, 2, 2, 2]
        erase = torch.zeros(4, 2, 2, dtype=self.dtype, device=alpha.device)
        for j, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            erase[j, a, b] = 1.0
        erase = torch.sqrt(p / 4).to(self.dtype)[:, None, None, None] * erase  # [m, 4, 2, 2]
        erase = erase[:, None].expand(m, 2, 4, 2, 2)
        return torch.cat([keep[:, :, None], erase], dim=2)  # [m, 2, 5, 2, 2]

    def outcome_masks(self, kraus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For diagonal Kraus operators (weak measurement) the outcome split is elementwise:
        ρ_o = σ ⊙ M_o with M_o[i, j] = v_o[i]·conj(v_o[j]), v_o[i] = Π_r K^{(r)}_{o_r}[i_q, i_q]
        (i_q: bit q = M[r] of i). Returns (M_obs [2^m, D, D] of the observed outcomes, readout
        confusion applied; M_carry [2^k, D, D] summed over the bits not fed forward)."""
        m, k = self.measurement.m, self.measurement.bits
        diag = torch.diagonal(kraus, dim1=-2, dim2=-1)  # [m, 2 outcomes, 2 bit values]
        outcomes = bit_table(m, torch.float64).long()  # [2^m, m]
        basis = bit_table(self.n, torch.float64).long()  # [D, n]
        v = torch.ones(1 << m, self.dim, dtype=self.dtype)
        for r, q in enumerate(self.measurement.qubits):
            v = v * diag[r][outcomes[:, r]][:, basis[:, q]]
        masks = v[:, :, None] * v.conj()[:, None, :]
        if self._confusion is not None:  # observed o: Σ_true Π_r C_r[o_r, true_r]·M_true
            mix = torch.ones(1 << m, 1 << m, dtype=self.dtype)
            for r in range(m):
                mix = mix * self._confusion[r][outcomes[:, r][:, None], outcomes[:, r][None, :]]
            masks = torch.einsum("ot,tij->oij", mix, masks)
        carry = masks.reshape(1 << (m - k), 1 << k, self.dim, self.dim).sum(dim=0)
        return masks, carry

    def evolve(self, rho: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
        """σ = Σ_s U(θ_s) ρ_s U(θ_s)† [B, D, D] (then the after-unitary channels)."""
        w = self.unitaries(self.block_angles(sets, rho.shape[1]))  # Uᵀ
        # U ρ U† = Wᵀ ρ W̄, summed over the blocks
        sigma = torch.matmul(w.transpose(-1, -2), torch.matmul(rho, w.conj())).sum(dim=1)
        for channel in self._after_unitary:
            sigma = self._apply(sigma, channel)
        return sigma

    def step(
        self, rho: torch.Tensor, sets: torch.Tensor, measure: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from blocks [B, S, D, D] with angle sets [B, A, P] and ``measure`` (from
        :meth:`measurement_map`): (features [B, F] real, next blocks [B, 2^k, D, D])."""
        sigma = self.evolve(rho, sets)
        m, k = self.measurement.m, self.measurement.bits
        if measure[0] == "masks":
            masks, carry = measure[1], measure[2]
            diag = torch.diagonal(sigma, dim1=-2, dim2=-1).real  # [B, D]
            probs = diag @ torch.diagonal(masks, dim1=-2, dim2=-1).real.t()  # [B, 2^m]
            carried = sigma[:, None] * carry
        else:
            out = sigma[:, None]
            basis = bit_table(self.n, torch.float64).long()
            for r, q in enumerate(self.measurement.qubits):
                if measure[0] == "coupled":  # ρ_o = (1 − p)·K_o ρ K_o† + (p/2)·Tr_q(ρ) ⊗ I/2
                    v = measure[1][r][:, basis[:, q]]  # [2 outcomes, D]
                    mask = v[:, :, None] * v.conj()[:, None, :]
                    p = measure[2][r]
                    erased = (p / 2) * replace_qubit(out, q, self.n)
                    out = torch.cat([(1 - p) * out * mask[o] + erased for o in (0, 1)], dim=1)
                    continue
                out = apply_outcomes(out, measure[1][r], q, self.n)
            if self._confusion is not None:
                out = apply_confusion(out, self._confusion, m)
            probs = torch.diagonal(out, dim1=-2, dim2=-1).real.sum(-1)
            b, _, d, _ = out.shape
            carried = out.reshape(b, 1 << (m - k), 1 << k, d, d).sum(dim=1)
        for channel in self._after_measure:
            carried = self._apply(carried, channel)
        features = probs @ self.signs
        if self.final_z:
            z = torch.diagonal(carried.sum(1), dim1=-2, dim2=-1).real @ self.z_signs
            features = torch.cat([features, z], dim=-1)
        return features, carried

    def measurement_map(self, alpha: torch.Tensor | None, masks: bool = True) -> tuple:
        """What :meth:`step` measures with: ("masks", M_obs, M_carry) for weak measurement
        (diagonal Kraus; ``masks=False`` forces the general path), else ("kraus", [m, 2, 2, 2]; with
        coupling noise [m, 2, 5, 2, 2], an instrument)."""
        kraus = self.kraus(alpha)
        if masks and self.measurement.kind == "weak" and self._coupling is None:
            return ("masks", *self.outcome_masks(kraus))
        if masks and self._coupling is not None:  # elementwise keep + local replace per bit
            diag = torch.diagonal(weak_kraus_torch(alpha, self.dtype), dim1=-2, dim2=-1)
            return ("coupled", diag, self._coupling.to(self.dtype))
        return ("kraus", kraus)

    def run(
        self,
        sets: torch.Tensor,
        alpha: torch.Tensor | None,
        rho: torch.Tensor | None = None,
        masks: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Angle sets [B, T, A, P] from ``rho`` (default |0…0⟩): (features [B, T, F], blocks)."""
        rho = self.initial(sets.shape[0]) if rho is None else rho
        measure = self.measurement_map(alpha, masks)
        features = []
        for t in range(sets.shape[1]):
            f, rho = self.step(rho, sets[:, t], measure)
            features.append(f)
        return torch.stack(features, dim=1), rho


class MeasuredCore(nn.Module):
    """The measured QRNN as a recurrent core (the ``QRNNCore`` interface: features [B, T, F] →
    outputs [B, T, R] and a state, here the density-matrix blocks [B, S, 2ⁿ, 2ⁿ])."""

    def __init__(
        self,
        input_size: int,
        spec: QRNNSpec,
        controller: ControllerConfig,
        config: MeasuredConfig,
        dtype: torch.dtype = torch.complex64,
        noise: StepNoise | None = None,
    ) -> None:
        super().__init__()
        self.input_size, self.spec, self.config = input_size, spec, config
        self.measurement = config.measurement_spec(spec.n_qubits)
        self.sim = MeasuredSimulator(spec, self.measurement, dtype, noise, config.final_z)
        self.sets = self.measurement.angle_sets
        self.controller = Controller(input_size, self.sets * spec.n_params, controller)
        m = self.measurement.m
        self.coupling: nn.Parameter | None = None
        if self.measurement.kind == "weak":
            alpha0 = check_coupling(config.coupling)
            if config.train_coupling:
                u = math.log(alpha0 / (math.pi / 2 - alpha0))  # sigmoid⁻¹(α/(π/2))
                self.coupling = nn.Parameter(torch.full((m,), u, dtype=torch.float64))
            else:
                self.register_buffer("fixed_alpha", torch.full((m,), alpha0, dtype=torch.float64))

    @property
    def output_size(self) -> int:
        return self.sim.n_features

    def alphas(self) -> torch.Tensor | None:
        """The coupling angles [m] (None for projective measurement)."""
        if self.measurement.kind != "weak":
            return None
        if self.coupling is not None:
            return (math.pi / 2) * torch.sigmoid(self.coupling)
        return self.fixed_alpha

    def angle_sets(self, x: torch.Tensor) -> torch.Tensor:
        """The host's angle sets [B, T, A, P] for features [B, T, F]."""
        b, t, _ = x.shape
        return self.controller(x).reshape(b, t, self.sets, self.spec.n_params)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [batch, time, {self.input_size}], got {tuple(x.shape)}"
            )
        sets = self.angle_sets(x).to(self.sim.real)
        features, rho = self.sim.run(sets, self.alphas(), state)
        return features.to(x.dtype), rho

    def circuit(self, x: torch.Tensor, name: str = "mqrnn"):
        """The dynamic circuit of one sequence of features [T, F] (angles bound on the host)."""
        with torch.no_grad():
            sets = self.angle_sets(x[None].to(self.controller.out.weight.dtype))[0]
            alphas = self.alphas()
        return measured_circuit(
            self.spec,
            self.measurement,
            sets.double().numpy(),
            None if alphas is None else alphas.tolist(),
            name=name,
        )

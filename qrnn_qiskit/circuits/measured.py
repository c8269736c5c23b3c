"""The measured QRNN's dynamic circuit: the definition of the model (DESIGN.md §5b).

One circuit per input sequence. Data register ``q`` (n qubits, ψ_0 = |0…0⟩); per step t:

1. the step circuit U(θ_t) (:func:`~.spec.step_circuit`), written as *groups* of commuting
   parametrized gates (the RY layer, the RZ layer, an RZZ layer) with the entanglers between them.
   Each group is applied with its base angles and is then corrected in real time from the previous
   step's bits (``feedforward``):

   * ``"linear"``: θ = a + Σ_r b_r·s_{t-1,r}. After a group's base rotations by a, one
     ``if_test((bit r, 1))`` per fed-forward bit applies the same gates rotated by b_r. Gates of one
     group commute and same-axis rotations add, so this is U(a + Σ_r b_r s_r);
   * ``"table"``: θ = c_s for the fed-forward bits s (2^k angle sets): for every s one
     ``if_test((register f{t-1}, s))`` applies the group with c_s (exactly one fires);
   * ``"none"``: the base angles only.

2. the measurement of the measured qubits M (m of them) into clbits (register per step):

   * ``"weak"``: through ancilla ``anc[r]``: H (|+⟩), RZZ(α_r)(data, anc), S†, H, measure, reset.
     With Z = λ = ±1 on the data qubit, P(s = 0 | λ) = (1 + λ sin α)/2, so
     E[(−1)^s] = sin α·⟨Z⟩; the data qubit gets a diagonal Kraus pair (:func:`weak_kraus`);
     α = π/2 is projective (without reset);
   * ``"projective"``: the data qubit itself is measured, then reset to |0⟩ (Kraus |0⟩⟨s|).

Only constructs IBM runtime executes are used: if/else on one measured bit (``table``: on a
register of ≤ 32 bits compared with an integer), no nesting, no measure/reset in a branch, no
arithmetic; every angle a bit can select is in the circuit. :func:`validate_measured` checks it.

Step t's bits sit in registers ``f{t}`` (the k fed-forward bits: measured qubits M[0..k−1]) and
``m{t}`` (the others), so the clbit index of (t, r) is t·m + r.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, ControlFlowOp, IfElseOp, Parameter, ParameterVector
from qiskit.quantum_info import Operator

from ..errors import QRNNError
from .spec import FEEDFORWARDS, MEASUREMENTS, QRNNSpec, step_circuit

MAX_TABLE_BITS = 8  # 2^k angle sets per step: the circuit and the controller grow with it
MAX_REGISTER_BITS = 32  # IBM runtime compares registers of at most 32 bits
# One-bit broadcasts (a measured bit sent to the controllers for an if_test) one IBM job may hold:
# "≈ 2,400 one-bit broadcasts (≈ 300 of 60 bits) per job" (shared/QISKIT_NOTES.md, hardware facts
# checked 2026-12-07, from IBM's dynamic-circuit guides). ``measured_jobs`` packs circuits by it.
JOB_BROADCAST_BUDGET = 2_400


@dataclass(frozen=True)
class MeasurementSpec:
    """What the measured QRNN measures each step and how the bits feed forward.

    ``qubits``: the measured data qubits M (in bit order r = 0..m−1); ``kind``: ``weak`` (an
    ancilla per measured qubit) or ``projective`` (measure and reset the data qubit);
    ``feedforward``: ``linear``, ``table`` or ``none``; ``bits``: how many of the measured bits
    (the first k of M) feed forward (``linear``/``table``; ``none``: 0).
    """

    n_qubits: int
    qubits: tuple[int, ...]
    kind: str = "weak"
    feedforward: str = "linear"
    bits: int = -1  # -1: all m measured bits (table: at most MAX_TABLE_BITS)

    def __post_init__(self) -> None:
        n = self.n_qubits
        qubits = tuple(self.qubits)
        if not qubits:
            raise QRNNError("the measured QRNN needs at least one measured qubit")
        if any(isinstance(q, bool) or not isinstance(q, int) or not 0 <= q < n for q in qubits):
            raise QRNNError(f"measured qubits {list(qubits)} must lie in the register 0..{n - 1}")
        if len(set(qubits)) != len(qubits):
            raise QRNNError(f"measured qubits {list(qubits)} repeat a qubit")
        object.__setattr__(self, "qubits", qubits)
        if self.kind not in MEASUREMENTS:
            raise QRNNError(
                f"measurement must be one of {', '.join(MEASUREMENTS)}, got {self.kind!r}"
            )
        if self.feedforward not in FEEDFORWARDS:
            raise QRNNError(
                f"feedforward must be one of {', '.join(FEEDFORWARDS)}, got {self.feedforward!r}"
            )
        m = len(qubits)
        bits = self.bits
        if self.feedforward == "none":
            bits = 0
        elif bits < 0:
            bits = min(m, MAX_TABLE_BITS) if self.feedforward == "table" else m
        if not 1 <= bits <= m and self.feedforward != "none":
            raise QRNNError(f"feedforward bits must be in 1..{m} (the measured bits), got {bits}")
        if self.feedforward == "table" and bits > MAX_TABLE_BITS:
            raise QRNNError(f"table feedforward takes at most {MAX_TABLE_BITS} bits, got {bits}")
        object.__setattr__(self, "bits", bits)

    @property
    def m(self) -> int:
        return len(self.qubits)

    @property
    def blocks(self) -> int:
        """Angle sets per step: 2^k (one per fed-forward outcome), 1 without feedforward."""
        return 1 << self.bits

    @property
    def angle_sets(self) -> int:
        """Angle vectors the host computes per step: a and b_1..b_k (linear), c_0..c_{2^k−1}
        (table), a (none)."""
        if self.feedforward == "linear":
            return 1 + self.bits
        return self.blocks


def check_coupling(alpha: float) -> float:
    """A weak-coupling angle α in (0, π/2] (α = π/2: projective), else a one-line QRNNError."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise QRNNError(f"coupling angle must be a number in (0, π/2], got {alpha!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= math.pi / 2 + 1e-12):
        raise QRNNError(f"coupling angle must be in (0, π/2] (π/2: projective), got {alpha!r}")
    return min(value, math.pi / 2)


def weak_coupling_block(alpha: float) -> QuantumCircuit:
    """The unitary part of one weak measurement on 2 qubits (0: data, 1: ancilla in |0⟩): the
    ancilla to |+⟩, RZZ(α), then S†·H so a Z measurement of the ancilla reads its Y basis."""
    block = QuantumCircuit(2, name="weak_coupling")
    block.h(1)
    block.rzz(alpha, 0, 1)
    block.sdg(1)
    block.h(1)
    return block


def weak_kraus(alpha: float) -> np.ndarray:
    """Kraus operators K_s [2 outcomes, 2, 2] on the data qubit, derived from the Qiskit block:
    K_s = (⟨s|_anc ⊗ I) O (|0⟩_anc ⊗ I) with O the Operator of :func:`weak_coupling_block`."""
    o = Operator(weak_coupling_block(check_coupling(alpha))).data  # index = data + 2·ancilla
    return np.array([[[o[i + 2 * s, j] for j in range(2)] for i in range(2)] for s in range(2)])


def projective_reset_kraus() -> np.ndarray:
    """Measure the data qubit, then reset it: K_s = |0⟩⟨s|."""
    k = np.zeros((2, 2, 2), dtype=complex)
    k[0, 0, 0] = 1.0
    k[1, 0, 1] = 1.0
    return k


def gate_groups(step: QuantumCircuit) -> list[tuple[str, list]]:
    """The step circuit ``step``'s instructions as a list of ("fixed", [instruction]) and ("group",
    [instructions]) items: a group is a maximal run of parametrized gates of one type (RY, RZ or
    RZZ) that commute with each other (single-qubit rotations on distinct qubits; RZZ gates are
    all diagonal), so corrections may follow the whole group."""
    items: list[tuple[str, list]] = []
    for instruction in step.data:
        op = instruction.operation
        parametrized = len(op.params) == 1 and not isinstance(op.params[0], (int, float))
        if not parametrized:
            items.append(("fixed", [instruction]))
            continue
        if items and items[-1][0] == "group":
            last = items[-1][1]
            same = last[0].operation.name == op.name
            qubits = {q for ins in last for q in ins.qubits}
            if same and (op.name == "rzz" or not qubits & set(instruction.qubits)):
                last.append(instruction)
                continue
        items.append(("group", [instruction]))
    return items


def measured_circuit(
    spec: QRNNSpec,
    measurement: MeasurementSpec,
    angles: np.ndarray,
    alphas: Sequence[float] | None = None,
    name: str = "mqrnn",
) -> QuantumCircuit:
    """The dynamic circuit of one sequence. ``angles`` [T, A, P] are the host's angle sets per step
    (A = ``measurement.angle_sets``: linear a, b_1..b_k; table c_0..c_{2^k−1}; none a): numbers
    (a bound circuit) or ``Parameter`` objects (a template, :func:`measured_template`);
    ``alphas``: the coupling angle of every measured qubit (weak measurement), always bound."""
    angles = np.asarray(angles, dtype=object if _symbolic(angles) else float)
    n, p, m, k = spec.n_qubits, spec.n_params, measurement.m, measurement.bits
    sets = measurement.angle_sets
    if measurement.n_qubits != n:
        raise QRNNError(f"measurement is for {measurement.n_qubits} qubits, the spec has {n}")
    if angles.ndim != 3 or angles.shape[1:] != (sets, p) or angles.shape[0] < 1:
        raise QRNNError(f"angles must be [T >= 1, {sets}, {p}], got {list(angles.shape)}")
    if measurement.kind == "weak":
        if alphas is None or len(alphas) != m:
            raise QRNNError(f"weak measurement needs {m} coupling angles, got {alphas!r}")
        alphas = [check_coupling(a) for a in alphas]
    steps = angles.shape[0]
    data = QuantumRegister(n, "q")
    registers: list = [data]
    anc = None
    if measurement.kind == "weak":
        anc = QuantumRegister(m, "anc")
        registers.append(anc)
    fed: list[ClassicalRegister | None] = []
    rest: list[ClassicalRegister | None] = []
    for t in range(steps):
        fed.append(ClassicalRegister(k, f"f{t}") if k else None)
        rest.append(ClassicalRegister(m - k, f"m{t}") if m - k else None)
        registers += [r for r in (fed[t], rest[t]) if r is not None]
    circuit = QuantumCircuit(*registers, name=name)
    step = step_circuit(spec)
    index = {param: j for j, param in enumerate(step.parameters)}

    def bit(t: int, r: int) -> Clbit:
        return fed[t][r] if r < k else rest[t][r - k]

    def apply(group: list, values: np.ndarray) -> None:
        for instruction in group:
            qubits = [data[step.find_bit(q).index] for q in instruction.qubits]
            gate = type(instruction.operation)
            value = values[index[instruction.operation.params[0]]]
            circuit.append(gate(value if isinstance(value, Parameter) else float(value)), qubits)

    for t in range(steps):
        for kind, group in gate_groups(step):
            if kind == "fixed":
                ins = group[0]
                circuit.append(ins.operation, [data[step.find_bit(q).index] for q in ins.qubits])
                continue
            if measurement.feedforward == "table":
                if t == 0:
                    apply(group, angles[t, 0])
                    continue
                for s in range(measurement.blocks):
                    with circuit.if_test((fed[t - 1], s)):
                        apply(group, angles[t, s])
                continue
            apply(group, angles[t, 0])
            if measurement.feedforward == "linear" and t > 0:
                for r in range(k):
                    with circuit.if_test((bit(t - 1, r), 1)):
                        apply(group, angles[t, 1 + r])
        for r, q in enumerate(measurement.qubits):
            if anc is None:
                circuit.measure(data[q], bit(t, r))
                circuit.reset(data[q])
                continue
            circuit.h(anc[r])
            circuit.rzz(alphas[r], data[q], anc[r])
            circuit.sdg(anc[r])
            circuit.h(anc[r])
            circuit.measure(anc[r], bit(t, r))
            circuit.reset(anc[r])
    return circuit


def _symbolic(angles) -> bool:
    return any(isinstance(a, Parameter) for a in np.asarray(angles, dtype=object).reshape(-1))


TEMPLATE_VECTOR = "theta"


def measured_template(
    spec: QRNNSpec,
    measurement: MeasurementSpec,
    steps: int,
    alphas: Sequence[float] | None = None,
    name: str = "mqrnn",
) -> QuantumCircuit:
    """The dynamic circuit of every sequence of ``steps`` steps as one template: the angle sets are
    the elements of ``ParameterVector("theta", T·A·P)`` in the order of ``angles.reshape(-1)``
    (bind a sequence with :func:`template_row`), the coupling angles ``alphas`` are bound. Sequences
    of one run differ only in their angles, so one template is transpiled (and scheduled) once for
    all of them. Angles a bit never selects (table feedforward at t = 0: c_1..) are not in it."""
    shape = (steps, measurement.angle_sets, spec.n_params)
    theta = ParameterVector(TEMPLATE_VECTOR, int(np.prod(shape)))
    angles = np.empty(shape, dtype=object)
    angles.reshape(-1)[:] = list(theta)
    return measured_circuit(spec, measurement, angles, alphas, name=name)


def template_row(angles: np.ndarray) -> np.ndarray:
    """The parameter row of :func:`measured_template` for one sequence's angle sets [T, A, P]."""
    return np.asarray(angles, dtype=float).reshape(-1)


def validate_measured(circuit: QuantumCircuit, registers: bool = False) -> None:
    """Raise QRNNError unless ``circuit`` uses only what IBM runtime executes in real time: if/else
    (no switch or loops), no nesting, no measure, reset or control flow inside a branch, conditions
    on single bits (``registers``: also on a register of ≤ 32 bits compared with an integer)."""
    for instruction in circuit.data:
        op = instruction.operation
        if op.name in ("switch_case", "for_loop", "while_loop", "box"):
            raise QRNNError(f"{op.name} is not executable in real time on IBM hardware")
        if not isinstance(op, IfElseOp):
            continue
        target, _ = op.condition
        if isinstance(target, ClassicalRegister):
            if not registers:
                raise QRNNError(f"if_test on register {target.name}: only single bits allowed")
            if target.size > MAX_REGISTER_BITS:
                raise QRNNError(f"if_test on a register of {target.size} bits (at most 32)")
        elif not isinstance(target, Clbit):
            raise QRNNError(f"if_test condition {target!r} is neither a bit nor a register")
        for body in op.blocks:
            for inner in body.data:
                if inner.operation.name in ("measure", "reset") or isinstance(
                    inner.operation, ControlFlowOp
                ):
                    raise QRNNError(
                        f"{inner.operation.name} inside a branch is not executable on IBM hardware"
                    )


def bit_expectations(memory: Sequence[str] | Mapping[str, int], steps: int, m: int) -> np.ndarray:
    """Shot averages E[(−1)^{s_{t,r}}] [T, m] from Aer/Sampler counts (or a list of shot bit
    strings) of a :func:`measured_circuit` (clbit index t·m + r)."""
    if isinstance(memory, Mapping):
        counts = dict(memory)
    else:
        counts = {}
        for key in memory:
            counts[key] = counts.get(key, 0) + 1
    total = 0
    acc = np.zeros(steps * m)
    for key, count in counts.items():
        bits = np.array([int(ch) for ch in key.replace(" ", "")[::-1]], dtype=float)
        if bits.shape[0] != steps * m:
            raise QRNNError(f"a shot has {bits.shape[0]} bits, expected {steps * m}")
        acc += count * (1.0 - 2.0 * bits)
        total += count
    return (acc / total).reshape(steps, m)


def broadcasts(circuit: QuantumCircuit) -> int:
    """One-bit broadcasts of ``circuit``'s conditions: 1 per if_test on a bit, k per if_test on a
    register of k bits (linear feedforward: one per fed-forward bit and rotation group per step;
    table: 2^k register conditions of k bits per group and step)."""
    total = 0
    for instruction in circuit.data:
        op = instruction.operation
        if isinstance(op, IfElseOp):
            target, _ = op.condition
            total += target.size if isinstance(target, ClassicalRegister) else 1
    return total


def measured_jobs(
    counts: Sequence[int],
    budget: int,
    describe: str = "",
) -> list[list[int]]:
    """Circuit indices packed in order into jobs of at most ``budget`` broadcasts each (``counts``:
    broadcasts per circuit). A circuit over the budget on its own is a one-line QRNNError that says
    what to reduce (``describe``: T and the feedforward form)."""
    jobs: list[list[int]] = []
    used = 0
    for i, c in enumerate(counts):
        if c > budget:
            raise QRNNError(
                f"one circuit ({describe}) needs {c:,} one-bit broadcasts, more than the "
                f"{budget:,} an IBM job allows; reduce the steps (--max-steps), the fed-forward "
                "bits (--feedforward-bits) or the layers, or use --feedforward linear/none"
            )
        if not jobs or used + c > budget:
            jobs.append([])
            used = 0
        jobs[-1].append(i)
        used += c
    return jobs


def shot_bits(key: str, width: int) -> np.ndarray:
    """The bits of one counts key (Aer's space-separated registers or a joined Sampler string) by
    clbit index."""
    bits = np.array([int(ch) for ch in key.replace(" ", "")[::-1]], dtype=float)
    if bits.shape[0] != width:
        raise QRNNError(f"a shot has {bits.shape[0]} bits, expected {width}")
    return bits

"""Calibration-aware helpers: estimated success probability (ESP) and a noise-aware, pinned layout.

ESP of a transpiled (ISA) circuit = Π (1 − error) over its instructions, read from the target's
calibrations. On IBM fake backends simulated by Aer the replay readouts shrink by about the ESP of
their prefix circuit (docs/hardware.md, "Mitigation"), so ESP is both the layout objective here and
the predicted readout shrink the evaluation divides out.

The layout is chosen once per evaluation and pinned for all of its circuits: the widest circuit is
transpiled on the full device, its interaction graph is matched onto the coupling graph
(``rustworkx.vf2_mapping``, every embedding up to a limit) and the embedding of highest ESP wins —
the scoring mapomatic does, with ESP as the score. All circuits are then transpiled with that
``initial_layout``, so per-step errors do not depend on which circuits an evaluation contains.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.transpiler import Target

from ..errors import QRNNError

# instructions that take no error (virtual or bookkeeping)
FREE = ("barrier", "delay", "rz", "id", "global_phase")
MAX_MAPPINGS = 20_000


def instruction_error(target: Target, name: str, qargs: tuple[int, ...]) -> float | None:
    """Calibrated error of ``name`` on ``qargs`` (None when the target has none; 0 for virtual
    gates). Two-qubit gates calibrated only in the other direction use that error."""
    if name in FREE:
        return 0.0
    if name not in target.operation_names:
        return None
    props = target[name]
    if props is None:
        return None
    for key in (qargs, tuple(reversed(qargs))):
        entry = props.get(key) if key in props else None
        if entry is not None and entry.error is not None:
            return float(entry.error)
    if None in props and props[None] is not None and props[None].error is not None:
        return float(props[None].error)
    return None


def _walk(circuit: QuantumCircuit, qubit_map: Sequence[int]) -> Iterable[tuple[str, tuple, float]]:
    """(name, physical qargs, weight) of every operation; if/else branches weigh 1/branches."""
    for instruction in circuit.data:
        operation = instruction.operation
        qargs = tuple(qubit_map[circuit.find_bit(q).index] for q in instruction.qubits)
        blocks = getattr(operation, "blocks", ())
        if blocks:
            for block in blocks:
                inner = [qargs[i] for i in range(block.num_qubits)]
                for name, q, w in _walk(block, inner):
                    yield name, q, w / len(blocks)
            continue
        yield operation.name, qargs, 1.0


def operation_counts(circuit: QuantumCircuit) -> Counter:
    """Counter of (name, physical qargs) → weighted count, branches averaged."""
    counts: Counter = Counter()
    for name, qargs, weight in _walk(circuit, list(range(circuit.num_qubits))):
        if name not in FREE:
            counts[(name, qargs)] += weight
    return counts


@dataclass(frozen=True)
class ESP:
    """ESP split into gates and measurements (``total`` = gates · measure)."""

    gates: float
    measure: float

    @property
    def total(self) -> float:
        return self.gates * self.measure


def circuit_esp(circuit: QuantumCircuit, target: Target, *, device: str = "target") -> ESP:
    """ESP of an ISA circuit on ``target`` (its qubit indices are the target's). A gate without a
    calibrated error is a one-line QRNNError: ESP needs the calibrations."""
    log_gates = log_measure = 0.0
    for (name, qargs), count in operation_counts(circuit).items():
        if name == "reset":
            continue  # resets are not calibrated on IBM targets; they prepare, not propagate
        error = instruction_error(target, name, qargs)
        if error is None:
            raise QRNNError(
                f"{device} has no calibrated error for {name} on qubits {list(qargs)}; ESP "
                "(--mitigate esp, --train-noise, the resource report's shrink) needs calibrations"
            )
        if error >= 1.0:
            return ESP(0.0, 0.0) if name != "measure" else ESP(math.exp(log_gates), 0.0)
        if name == "measure":
            log_measure += count * math.log1p(-error)
        else:
            log_gates += count * math.log1p(-error)
    return ESP(math.exp(log_gates), math.exp(log_measure))


def measured_qubits(circuit: QuantumCircuit) -> dict[int, int]:
    """{clbit: qubit} of the measurements of ``circuit`` (the last one per clbit wins)."""
    out = {}
    for instruction in circuit.data:
        if instruction.operation.name == "measure":
            out[circuit.find_bit(instruction.clbits[0]).index] = circuit.find_bit(
                instruction.qubits[0]
            ).index
    return out


def readout_contraction(target: Target, qubit: int, *, device: str = "target") -> float:
    """1 − p(0|1) − p(1|0) ≈ 1 − 2·error: the factor by which measuring ``qubit`` shrinks ⟨Z⟩."""
    error = instruction_error(target, "measure", (qubit,))
    if error is None:
        raise QRNNError(f"{device} has no calibrated readout error for qubit {qubit}")
    return max(0.0, 1.0 - 2.0 * error)


def coupling_graph(target: Target):
    """Undirected rustworkx graph of the target's two-qubit connectivity."""
    import rustworkx as rx

    graph = rx.PyGraph(multigraph=False)
    graph.add_nodes_from(range(target.num_qubits))
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        if isinstance(operation, type) or getattr(operation, "num_qubits", 0) != 2:
            continue
        for qargs in target[name] or {}:
            if qargs is not None and len(qargs) == 2 and not graph.has_edge(*qargs):
                graph.add_edge(qargs[0], qargs[1], None)
    return graph


def _score(counts: Counter, mapping: dict[int, int], target: Target) -> float:
    """log ESP of the counted operations with qubits renamed by ``mapping`` (−inf if any is
    uncalibrated or broken)."""
    total = 0.0
    for (name, qargs), count in counts.items():
        if name == "reset":
            continue
        error = instruction_error(target, name, tuple(mapping[q] for q in qargs))
        if error is None or error >= 1.0:
            return -math.inf
        total += count * math.log1p(-error)
    return total


def best_embedding(
    placed: QuantumCircuit, target: Target, max_mappings: int = MAX_MAPPINGS
) -> tuple[dict[int, int], float]:
    """({physical qubit of ``placed`` → physical qubit}, ESP) of the best-ESP embedding of the
    routed circuit ``placed`` (an ISA circuit on ``target``) onto the coupling graph."""
    import rustworkx as rx

    counts = operation_counts(placed)
    active = sorted({q for _, qargs in counts for q in qargs})
    index = {q: i for i, q in enumerate(active)}
    small = rx.PyGraph(multigraph=False)
    small.add_nodes_from(active)
    for _, qargs in counts:
        if len(qargs) == 2:
            a, b = index[qargs[0]], index[qargs[1]]
            if not small.has_edge(a, b):
                small.add_edge(a, b, None)
    identity = {q: q for q in active}
    best, best_score = identity, _score(counts, identity, target)
    if small.num_edges() == 0:  # no two-qubit gates: pick the best qubits one by one is overkill
        return best, math.exp(best_score) if best_score > -math.inf else 0.0
    device = coupling_graph(target)
    mappings = rx.vf2_mapping(device, small, subgraph=True, induced=False, id_order=False)
    for trial, found in enumerate(mappings):
        if trial >= max_mappings:
            break
        mapping = {active[small_node]: device_node for device_node, small_node in found.items()}
        score = _score(counts, mapping, target)
        if score > best_score:
            best, best_score = mapping, score
    return best, math.exp(best_score) if best_score > -math.inf else 0.0


@dataclass(frozen=True)
class PinnedLayout:
    """The physical qubit of every logical qubit (``initial``), the region of physical qubits the
    circuits use (sorted), and the ESP of the widest circuit there (``esp``) against the preset
    pass manager's own choice (``preset_esp``)."""

    initial: list[int]
    region: list[int]
    esp: float
    preset_esp: float
    method: str

    def to_dict(self) -> dict:
        return {
            "initial": self.initial,
            "region": self.region,
            "esp": self.esp,
            "preset_esp": self.preset_esp,
            "method": self.method,
        }


LAYOUT_METHODS = ("esp", "preset")


def choose_layout(
    widest: QuantumCircuit,
    target: Target,
    *,
    optimization_level: int = 3,
    seed: int = 0,
    method: str = "esp",
    device: str = "target",
) -> PinnedLayout:
    """Place ``widest`` (a logical circuit) on ``target`` once: ``preset`` keeps the preset pass
    manager's layout (VF2Layout/VF2PostLayout at level ≥ 1), ``esp`` re-embeds its routed form at
    the highest-ESP position. Pin the result with ``initial_layout=layout.initial``."""
    from qiskit.transpiler import generate_preset_pass_manager

    if method not in LAYOUT_METHODS:
        raise QRNNError(f"unknown layout method {method!r}; use one of {', '.join(LAYOUT_METHODS)}")
    manager = generate_preset_pass_manager(optimization_level, target=target, seed_transpiler=seed)
    placed = manager.run(widest)
    initial = list(placed.layout.initial_index_layout(filter_ancillas=True))
    counts = operation_counts(placed)
    used = sorted({q for _, qargs in counts for q in qargs} | set(initial))
    preset_score = _score(counts, {q: q for q in used}, target)
    preset_esp = math.exp(preset_score) if preset_score > -math.inf else 0.0
    if method == "preset":
        return PinnedLayout(initial, used, preset_esp, preset_esp, method)
    mapping, esp = best_embedding(placed, target)
    mapping = {**{q: q for q in used if q not in mapping}, **mapping}
    if esp <= preset_esp:
        return PinnedLayout(initial, used, preset_esp, preset_esp, method)
    moved = [mapping[q] for q in initial]
    region = sorted(mapping[q] for q in used)
    if len(set(region)) != len(region):  # an idle qubit collided with a moved one: keep preset
        return PinnedLayout(initial, used, preset_esp, preset_esp, "preset")
    return PinnedLayout(moved, region, esp, preset_esp, method)


def shrink_table(
    spec: Any,
    isa: Sequence,
    target: Any,
    steps: int,
    settings: Sequence[str],
    assignment: Sequence[int],
    *,
    measure: bool = True,
    device: str = "target",
) -> np.ndarray:
    """Predicted shrink λ [steps, R] of every replay readout: the ESP of the gates of its ISA
    template (step t, its setting; templates ordered step-major as in ReplayProtocol) times, with
    ``measure``, 1 − 2·(readout error) of each measured qubit in the readout's support."""
    from ..circuits.replay import label_support
    from ..circuits.spec import readout_labels

    labels = readout_labels(spec)
    supports = [sorted(label_support(label)) for label in labels]
    out = np.ones((steps, len(labels)))
    for t in range(steps):
        for s in range(len(settings)):
            circuit = isa[t * len(settings) + s]
            gates = circuit_esp(circuit, target, device=device).gates
            measured = measured_qubits(circuit)  # clbit q holds logical qubit q
            for r, a in enumerate(assignment):
                if a != s:
                    continue
                factor = gates
                if measure:
                    for q in supports[r]:
                        factor *= readout_contraction(target, measured[q], device=device)
                out[t, r] = factor
    return out


__all__ = [
    "shrink_table",
    "ESP",
    "LAYOUT_METHODS",
    "PinnedLayout",
    "best_embedding",
    "choose_layout",
    "circuit_esp",
    "coupling_graph",
    "instruction_error",
    "measured_qubits",
    "readout_contraction",
    "operation_counts",
]

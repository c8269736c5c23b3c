"""Executors of measured QRNN circuits on simulators: exact probabilities, ideal Aer and noisy Aer.

Targets (``parse_target``): ``exact`` (outcome probabilities; ``statevector`` is the old name),
``aer`` (ideal shots),
``aer-noisy:<fake backend>`` (the calibrated noise of a ``qiskit_ibm_runtime.fake_provider``
backend) and ``aer-noisy:depolarizing:<p>`` (depolarizing probability p on every two-qubit gate,
p/10 on sx/x, rz noiseless, plus an optional symmetric readout error). Targets are parsed in
``backends.targets`` (re-exported here, as is ``backends.timing``); ``ibm:<backend>`` is executed by
``backends.ibm``.

A fake backend's noise model covers 127–156 qubits and costs seconds per Aer run. The executor
therefore lets Qiskit's preset pass manager choose the physical qubits on the full device once, then
simulates the sub-device of those qubits (same calibration data, same gate set and connectivity) —
identical noise for the circuits, ~20× cheaper per run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2
from qiskit.quantum_info import Statevector
from qiskit.transpiler import Target, generate_preset_pass_manager

from ..errors import QRNNError

# targets and timing live in their own modules; re-exported for callers that import them from here
from .targets import (
    SubBackend,
    TargetSpec,
    active_qubits,
    check_dynamic_support,
    fake_backend,
    fake_backend_names,
    parse_target,
    restrict_target,
)
from .timing import estimate_seconds, scheduled_duration

DEPOLARIZING_BASIS = ("rz", "sx", "x", "cx")
CONTROL_FLOW = ("if_else", "measure", "reset")

Pub = tuple[QuantumCircuit, np.ndarray | None]
Counts = dict[str, float]


class Executor:
    """Transpiles circuits for one target and runs lists of PUBs ``(circuit, parameter rows [K, p] |
    None)``.

    ``run`` returns, for every PUB, one counts dictionary per parameter row (probabilities for exact
    targets).
    """

    target_spec: TargetSpec
    remote = False
    exact = False
    seconds_target: Target | None = (
        None  # target with instruction durations, for QPU-time estimates
    )
    physical_qubits: list[int] | None = None
    # target whose calibrations (errors) describe the prepared ISA circuits (None: no calibrations)
    calibration_target: Target | None = None
    # told before each long phase of ``prepare`` what it does (one line; the runner passes
    # ``formatting.status`` while --progress is on); None: silent
    status: Callable[[str], None] | None = None

    def say(self, message: str) -> None:
        """Pass ``message`` to ``status`` (if set)."""
        if self.status is not None:
            self.status(message)

    def prepare(
        self, circuits: Sequence[QuantumCircuit], dynamic: bool = False
    ) -> list[QuantumCircuit]:
        raise NotImplementedError

    def run(self, pubs: Sequence[Pub], shots: int, seed: int = 0) -> list[list[Counts]]:
        raise NotImplementedError

    @property
    def description(self) -> str:
        return self.target_spec.label


def bind_rows(circuit: QuantumCircuit, values: np.ndarray | None) -> list[QuantumCircuit]:
    """The circuit bound to each row of ``values`` (or the circuit itself when it has no
    parameters)."""
    if values is None or circuit.num_parameters == 0:
        return [circuit]
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != circuit.num_parameters:
        raise ValueError(
            f"{circuit.name}: {circuit.num_parameters} parameters, got rows of {values.shape[1]} "
            "values"
        )
    return [circuit.assign_parameters(row) for row in values]


class StatevectorExecutor(Executor):
    """Exact outcome probabilities of circuits whose measurements are all terminal (no shots)."""

    exact = True

    def __init__(self) -> None:
        self.target_spec = TargetSpec("exact")

    def prepare(
        self, circuits: Sequence[QuantumCircuit], dynamic: bool = False
    ) -> list[QuantumCircuit]:
        if dynamic:
            raise QRNNError(
                "dynamic circuits sample mid-circuit measurements and have no exact form; "
                "use --target aer for their ideal (shot-based) simulation"
            )
        return list(circuits)

    def run(self, pubs: Sequence[Pub], shots: int, seed: int = 0) -> list[list[Counts]]:
        return [
            [self._probabilities(c) for c in bind_rows(circuit, values)] for circuit, values in pubs
        ]

    @staticmethod
    def _probabilities(circuit: QuantumCircuit) -> Counts:
        measured: dict[int, int] = {}
        for instruction in circuit.data:
            if instruction.operation.name == "measure":
                measured[circuit.find_bit(instruction.clbits[0]).index] = circuit.find_bit(
                    instruction.qubits[0]
                ).index
        if sorted(measured) != list(range(circuit.num_clbits)):
            raise ValueError(
                f"{circuit.name}: every clbit must be measured exactly once for an exact evaluation"
            )
        unitary = circuit.remove_final_measurements(inplace=False)
        probs = Statevector(unitary).probabilities_dict(
            qargs=[measured[c] for c in range(circuit.num_clbits)]
        )
        return {key: float(p) for key, p in probs.items() if p > 1e-14}


def depolarizing_noise_model(p: float, readout_error: float = 0.0):
    """p on every cx, p/10 on sx and x, rz noiseless (virtual), symmetric readout error."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    model = NoiseModel(basis_gates=list(DEPOLARIZING_BASIS))
    if p > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(p, 2), ["cx"])
        model.add_all_qubit_quantum_error(depolarizing_error(p / 10, 1), ["sx", "x"])
    if readout_error > 0:
        e = readout_error
        model.add_all_qubit_readout_error(ReadoutError([[1 - e, e], [e, 1 - e]]))
    return model


class AerExecutor(Executor):
    """Ideal or noisy Aer with shots; all PUBs of one ``run`` go into a single
    ``AerSimulator.run``."""

    def __init__(
        self,
        target: TargetSpec,
        optimization_level: int = 3,
        seed_transpiler: int = 0,
        layout_method: str = "esp",
    ) -> None:
        from qiskit_aer import AerSimulator

        if target.kind not in ("aer", "aer-noisy"):
            raise ValueError(f"AerExecutor runs aer and aer-noisy targets, not {target.label}")
        self.target_spec = target
        self.optimization_level = optimization_level
        self.seed_transpiler = seed_transpiler
        self.layout_method = layout_method
        self.layout = None  # the PinnedLayout of the last prepare() on a fake backend
        self.device: BackendV2 | None = None
        self.simulator: Any = None
        if target.kind == "aer":
            self.simulator = AerSimulator()
        elif target.depolarizing:
            self.simulator = AerSimulator(
                noise_model=depolarizing_noise_model(target.p, target.readout_error)
            )
        else:
            self.device = fake_backend(target.backend)

    def _pass_manager(self, target: Target | None = None, initial_layout: list[int] | None = None):
        if target is not None:
            return generate_preset_pass_manager(
                self.optimization_level,
                target=target,
                seed_transpiler=self.seed_transpiler,
                initial_layout=initial_layout,
            )
        if self.target_spec.depolarizing:
            return generate_preset_pass_manager(
                self.optimization_level,
                basis_gates=list(DEPOLARIZING_BASIS + CONTROL_FLOW),
                seed_transpiler=self.seed_transpiler,
            )
        return generate_preset_pass_manager(
            self.optimization_level, backend=self.simulator, seed_transpiler=self.seed_transpiler
        )

    def prepare(
        self, circuits: Sequence[QuantumCircuit], dynamic: bool = False
    ) -> list[QuantumCircuit]:
        """Transpile for the target. For fake backends the layout is chosen once on the full device
        (``backends.layout.choose_layout``: the widest circuit, noise-aware) and pinned for every
        circuit; they are transpiled on, and simulated with, the sub-device of those qubits."""
        if self.device is None:
            self.say(
                f"transpiling {len(circuits)} templates for {self.description} (optimization "
                f"level {self.optimization_level})…"
            )
            return list(self._pass_manager().run(list(circuits)))
        from qiskit_aer import AerSimulator

        from .layout import choose_layout

        device = self.device.target
        widest = max(circuits, key=lambda c: (c.num_qubits, c.size()))
        if widest.num_qubits > self.device.num_qubits:
            raise QRNNError(
                f"{self.device.name} has {self.device.num_qubits} qubits; these circuits need "
                f"{widest.num_qubits}"
            )
        if dynamic:
            check_dynamic_support(device, self.device.name)
        self.say(
            f"choosing the layout on {self.device.name} ({self.layout_method}, optimization level "
            f"{self.optimization_level})…"
        )
        self.layout = choose_layout(
            widest,
            device,
            optimization_level=self.optimization_level,
            seed=self.seed_transpiler,
            method=self.layout_method,
            device=self.device.name,
        )
        self.physical_qubits = list(self.layout.region)
        region = restrict_target(device, self.physical_qubits)
        self.seconds_target = region
        self.calibration_target = region
        self.simulator = AerSimulator.from_backend(
            SubBackend(region, f"{self.device.name}{self.physical_qubits}")
        )
        initial = [self.physical_qubits.index(p) for p in self.layout.initial]
        self.say(
            f"transpiling {len(circuits)} templates for {self.device.name} (optimization level "
            f"{self.optimization_level})…"
        )
        if any(c.num_qubits != len(initial) for c in circuits):
            return [self._pass_manager(region, initial[: c.num_qubits]).run(c) for c in circuits]
        return list(self._pass_manager(region, initial).run(list(circuits)))

    def m3_system(self) -> Any:
        """The backend mthree calibrates on: the simulator of the prepared (sub-)device."""
        return self.simulator

    def run(self, pubs: Sequence[Pub], shots: int, seed: int = 0) -> list[list[Counts]]:
        if shots < 1:
            raise QRNNError(f"--shots must be >= 1, got {shots}")
        from .fractional import template_values

        bound: list[QuantumCircuit] = []
        sizes = []
        for circuit, values in pubs:
            rows = bind_rows(circuit, template_values(circuit, values))
            bound += rows
            sizes.append(len(rows))
        dynamic = any(op in c.count_ops() for c in bound[:1] for op in ("if_else", "reset"))
        options: dict[str, Any] = {"shots": shots, "seed_simulator": seed}
        if dynamic or max(c.num_qubits for c in bound) > 12 and self.device is None:
            options["method"] = "statevector"
        result = self.simulator.run(bound, **options).result()
        counts = [dict(result.get_counts(i)) for i in range(len(bound))]
        out, start = [], 0
        for size in sizes:
            out.append(counts[start : start + size])
            start += size
        return out


def make_simulator_executor(
    target: TargetSpec, optimization_level: int = 3, seed: int = 0
) -> Executor:
    """The executor of a simulator target (``ibm:`` targets are built by ``backends.ibm``)."""
    if target.exact:
        return StatevectorExecutor()
    if target.kind in ("aer", "aer-noisy"):
        return AerExecutor(target, optimization_level, seed)
    raise QRNNError(f"{target.label} is not a simulator target")


def normalise(counts: Mapping[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()}


__all__ = [
    "AerExecutor",
    "Executor",
    "StatevectorExecutor",
    "SubBackend",
    "TargetSpec",
    "active_qubits",
    "bind_rows",
    "check_dynamic_support",
    "depolarizing_noise_model",
    "estimate_seconds",
    "fake_backend",
    "fake_backend_names",
    "make_simulator_executor",
    "parse_target",
    "restrict_target",
    "scheduled_duration",
]

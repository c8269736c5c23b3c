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

On fake backends every circuit is also scheduled with the target's durations and thermal relaxation
is charged to the idle time of every qubit (``backends.relaxation``): ``from_backend`` alone charges
none to a qubit waiting through other qubits' measurements and resets. ``Executor.idle_relaxation``
records what was charged (evaluations copy it into result.json and the resource report).
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
    """The executor seam: transpiles circuits for one target and runs lists of PUBs ``(circuit,
    parameter rows [K, p] | None)``. Evaluations ask only for what is declared here (no probing).

    ``run`` returns, for every PUB, one counts dictionary per parameter row (probabilities for exact
    targets). Remote executors (IBM) subclass :class:`RemoteExecutor` and submit/fetch jobs instead.
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
    # how the executor chooses physical qubits (None: it does not choose any)
    layout_method: str | None = None
    # the ``PinnedLayout`` chosen by the last ``prepare`` (None: no layout was chosen)
    layout: Any = None
    rep_delay: float = 250e-6  # seconds between shots, for QPU-time estimates
    m3_shots: int = 10_000  # shots per M3 readout calibration circuit
    # {"applied": bool, ...}: thermal relaxation charged to idle time (backends.relaxation); None
    # where it does not apply (ideal and depolarizing simulators, hardware)
    idle_relaxation: dict | None = None
    # the mid-circuit measurement instruction of the last prepared dynamic circuits: "measure", or
    # IBM's faster "measure_2" (MidCircuitMeasure) where an IBM target lists it (Aer, and so local
    # mode, cannot simulate it)
    measure_instruction: str = "measure"
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

    def m3_system(self) -> Any:
        """The backend mthree calibrates readout on (None: readout mitigation does not apply)."""
        return None

    def close(self) -> None:
        """Release what the executor holds open (a runtime Session or Batch); a no-op locally."""

    @property
    def description(self) -> str:
        return self.target_spec.label


class RemoteExecutor(Executor):
    """An executor whose circuits run as jobs on a service: every job is submitted with tags,
    recorded before anything waits on it, and fetched later (possibly by another process)."""

    remote = True
    channel: str = ""
    sampler_options: dict
    mode_kind: str  # "session" (dependent rounds) or "batch" (independent jobs)
    mode_id: str | None = None  # a recorded Session/Batch id to reopen

    @property
    def batch_id(self) -> str | None:
        """The id of the open Session or Batch (None before one is opened)."""
        return self.mode_id

    def find_job(self, tags: Sequence[str]) -> str | None:
        """The id of a job the service already holds under exactly these tags, else None."""
        return None

    def submit(
        self, pubs: Sequence[Pub], shots: int, tags: Sequence[str] = (), seed: int | None = None
    ) -> str:
        """Submit one job (all PUBs) and return its id without waiting."""
        raise NotImplementedError

    def fetch(self, job_id: str, timeout: float | None = None) -> list[list[Counts]]:
        raise NotImplementedError

    def run(self, pubs: Sequence[Pub], shots: int, seed: int = 0) -> list[list[Counts]]:
        return self.fetch(self.submit(pubs, shots, seed=seed))


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
        relax_idle: bool = True,
    ) -> None:
        from qiskit_aer import AerSimulator

        if target.kind not in ("aer", "aer-noisy"):
            raise ValueError(f"AerExecutor runs aer and aer-noisy targets, not {target.label}")
        self.target_spec = target
        self.optimization_level = optimization_level
        self.seed_transpiler = seed_transpiler
        self.layout_method = layout_method
        self.relax_idle = relax_idle  # False only to show what from_backend alone does
        self._relaxed: dict[int, tuple[QuantumCircuit, QuantumCircuit]] = {}
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
            isa = [self._pass_manager(region, initial[: c.num_qubits]).run(c) for c in circuits]
        else:
            isa = list(self._pass_manager(region, initial).run(list(circuits)))
        self._relax(isa)
        return isa

    def _relax(self, isa: Sequence[QuantumCircuit]) -> None:
        """Schedule every ISA circuit and charge relaxation to its idle time (kept for ``run``);
        record the summary in ``idle_relaxation``."""
        from .relaxation import Coherence, relax_idle

        self._relaxed = {}
        if not self.relax_idle:
            self.idle_relaxation = {
                "applied": False,
                "reason": "switched off (relax_idle=False): NoiseModel.from_backend charges no "
                "relaxation to idle time",
            }
            return
        region = self.calibration_target
        if not region.qubit_properties:
            self.idle_relaxation = {
                "applied": False,
                "reason": f"{self.device.name} lists no T1/T2 (qubit_properties)",
            }
            self.relax_idle = False
            return
        coherence = Coherence.of(region, device=self.device.name)
        longest, longest_seconds, schedulers = None, -1.0, set()
        for circuit in isa:
            relaxed = relax_idle(circuit, region, coherence)
            self._relaxed[id(circuit)] = (circuit, relaxed.circuit)
            schedulers.add(relaxed.scheduler)
            seconds = scheduled_duration(circuit, region) or 0.0
            if seconds > longest_seconds:
                longest, longest_seconds = relaxed, seconds
        physical = self.physical_qubits or []
        self.idle_relaxation = {
            "applied": True,
            "method": "schedule (" + "; ".join(sorted(schedulers)) + "), thermal_relaxation_error "
            "after every idle interval (qiskit_aer RelaxationNoisePass, op_types=Delay), delays "
            "then removed",
            "t1_s": {str(p): coherence.t1[i] for i, p in enumerate(physical)},
            "t2_s": {str(p): coherence.t2[i] for i, p in enumerate(physical)},
            "longest_circuit_seconds": longest_seconds,
            "idle_seconds_per_qubit": {
                str(p): longest.idle_seconds[i] for i, p in enumerate(physical)
            }
            if longest is not None
            else {},
        }

    def _noisy(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit Aer runs: with idle relaxation on fake backends (scheduled on first use when
        ``prepare`` did not see it)."""
        if self.device is None or not self.relax_idle or self.calibration_target is None:
            return circuit
        known = self._relaxed.get(id(circuit))
        if known is None or known[0] is not circuit:
            from .relaxation import relax_idle

            known = (circuit, relax_idle(circuit, self.calibration_target).circuit)
            self._relaxed[id(circuit)] = known
        return known[1]

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
            rows = bind_rows(self._noisy(circuit), template_values(circuit, values))
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

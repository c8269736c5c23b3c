"""Executors of measured QRNN circuits on simulators: exact probabilities, ideal Aer and noisy Aer.

Targets (``parse_target``): ``exact`` (outcome probabilities; ``statevector`` is the old name),
``aer`` (ideal shots),
``aer-noisy:<fake backend>`` (the calibrated noise of a ``qiskit_ibm_runtime.fake_provider``
backend) and ``aer-noisy:depolarizing:<p>`` (depolarizing probability p on every two-qubit gate,
p/10 on sx/x, rz noiseless, plus an optional symmetric readout error). ``ibm:<backend>`` is parsed
here and executed by ``backends.ibm``.

A fake backend's noise model covers 127–156 qubits and costs seconds per Aer run. The executor
therefore lets Qiskit's preset pass manager choose the physical qubits on the full device once, then
simulates the sub-device of those qubits (same calibration data, same gate set and connectivity) —
identical noise for the circuits, ~20× cheaper per run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.quantum_info import Statevector
from qiskit.transpiler import Target, generate_preset_pass_manager

from ..errors import QRNNError

TARGET_KINDS = ("exact", "aer", "aer-noisy", "ibm")
EXACT_ALIASES = ("exact", "statevector")  # "statevector" was the exact target's name before
DEPOLARIZING_BASIS = ("rz", "sx", "x", "cx")
CONTROL_FLOW = ("if_else", "measure", "reset")

Pub = tuple[QuantumCircuit, np.ndarray | None]
Counts = dict[str, float]


@dataclass(frozen=True)
class TargetSpec:
    """A parsed ``--target``: ``kind`` ∈ TARGET_KINDS, ``backend`` (fake or IBM name), ``p``
    (depolarizing)."""

    kind: str
    backend: str = ""
    p: float = 0.0
    readout_error: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise QRNNError(
                f"unknown target kind {self.kind!r}; use one of {', '.join(TARGET_KINDS)}"
            )
        if not 0.0 <= self.p <= 1.0:
            raise QRNNError(f"depolarizing probability must be in [0, 1], got {self.p}")
        if not 0.0 <= self.readout_error <= 0.5:
            raise QRNNError(f"--readout-error must be in [0, 0.5], got {self.readout_error}")

    @property
    def depolarizing(self) -> bool:
        return self.kind == "aer-noisy" and self.backend == "depolarizing"

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def label(self) -> str:
        """The target as the user writes it (readout error appended for depolarizing targets)."""
        if self.kind in ("exact", "aer"):
            return self.kind
        if self.depolarizing:
            suffix = f":ro{self.readout_error:g}" if self.readout_error else ""
            return f"aer-noisy:depolarizing:{self.p:g}{suffix}"
        return f"{self.kind}:{self.backend}"


def parse_target(text: str, readout_error: float = 0.0) -> TargetSpec:
    """Parse ``exact`` (alias ``statevector``) | ``aer`` | ``aer-noisy:<fake>`` |
    ``aer-noisy:depolarizing:<p>`` | ``ibm:<backend>``."""
    text = text.strip()
    if text in EXACT_ALIASES:
        return TargetSpec("exact")
    if text == "aer":
        return TargetSpec(text)
    kind, _, rest = text.partition(":")
    if kind == "aer-noisy" and rest.startswith("depolarizing"):
        _, _, value = rest.partition(":")
        try:
            p = float(value)
        except ValueError:
            raise QRNNError(
                f"target {text!r}: write aer-noisy:depolarizing:<p> with p a number, e.g. 0.01"
            ) from None
        return TargetSpec("aer-noisy", "depolarizing", p, readout_error)
    if kind == "aer-noisy" and rest:
        fake_backend(rest)  # validates the name
        return TargetSpec("aer-noisy", rest.lower())
    if kind == "ibm" and rest:
        return TargetSpec("ibm", rest)
    raise QRNNError(
        f"unknown target {text!r}; use exact, aer, aer-noisy:<fake backend>, "
        "aer-noisy:depolarizing:<p> or ibm:<backend>"
    )


def _fake_classes() -> dict[str, type]:
    """{normalised name: class} of the BackendV2 fakes in ``qiskit_ibm_runtime.fake_provider``."""
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    classes = {}
    for attr in dir(fake_provider):
        cls = getattr(fake_provider, attr)
        if (
            isinstance(cls, type)
            and issubclass(cls, FakeBackendV2)
            and attr.startswith("Fake")
            and attr != "FakeBackendV2"
        ):
            key = re.sub(r"v2$", "", attr[4:].lower())
            classes.setdefault(key, cls)
    return classes


def fake_backend_names() -> list[str]:
    """Names of the offline fake backends of ``qiskit_ibm_runtime.fake_provider`` (e.g.
    ``fake_fez``)."""
    return sorted(f"fake_{key}" for key in _fake_classes())


def fake_backend(name: str) -> BackendV2:
    """The fake backend called ``name`` (``fake_fez``, ``FakeFez`` and ``fez`` all work)."""
    key = re.sub(r"v2$", "", re.sub(r"[^a-z0-9]", "", name.lower()).removeprefix("fake"))
    cls = _fake_classes().get(key)
    if cls is None:
        raise QRNNError(
            f"unknown fake backend {name!r}; valid names: {', '.join(fake_backend_names())}"
        )
    return cls()


def restrict_target(target: Target, qubits: Sequence[int]) -> Target:
    """The sub-device of ``target`` on the physical ``qubits`` (renumbered 0..m-1), calibration
    included."""
    index = {p: i for i, p in enumerate(qubits)}
    properties = target.qubit_properties
    sub = Target(
        description=f"{target.description or 'target'} restricted to qubits {list(qubits)}",
        num_qubits=len(qubits),
        dt=target.dt,
        granularity=target.granularity,
        min_length=target.min_length,
        pulse_alignment=target.pulse_alignment,
        acquire_alignment=target.acquire_alignment,
        qubit_properties=[properties[p] for p in qubits] if properties else None,
    )
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        if isinstance(operation, type):  # variadic control flow (IfElseOp, …): global
            sub.add_instruction(operation, name=name)
            continue
        props = target[name]
        if props is None or None in props:
            sub.add_instruction(operation, {None: None}, name=name)
            continue
        kept = {
            tuple(index[q] for q in qargs): p
            for qargs, p in props.items()
            if all(q in index for q in qargs)
        }
        if kept:
            sub.add_instruction(operation, kept, name=name)
    return sub


class SubBackend(BackendV2):
    """A minimal ``BackendV2`` around a ``Target`` (used to build Aer noise models of
    sub-devices)."""

    def __init__(self, target: Target, name: str) -> None:
        super().__init__(name=name, backend_version="1")
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options()

    def run(self, run_input, **options):  # pragma: no cover - never executed directly
        raise NotImplementedError(
            "SubBackend only describes a device; simulate it with AerSimulator.from_backend"
        )


def active_qubits(circuit: QuantumCircuit) -> list[int]:
    """Indices of the qubits that any instruction other than barrier/delay acts on (control flow
    included)."""
    used: set[int] = set()
    for instruction in circuit.data:
        if instruction.operation.name in ("barrier", "delay"):
            continue
        used.update(circuit.find_bit(q).index for q in instruction.qubits)
    return sorted(used)


def check_dynamic_support(target: Target, name: str) -> None:
    """Raise a clear error when ``target`` cannot run mid-circuit measurement + reset + if_else."""
    missing = [op for op in ("if_else", "reset", "measure") if op not in target.operation_names]
    if missing:
        raise QRNNError(
            f"backend {name} does not support {', '.join(missing)}; --protocol dynamic needs "
            "mid-circuit "
            "measurement, reset and if_else (use --protocol replay, or e.g. fake_fez / "
            "fake_kingston)"
        )


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


def _duration(target: Target, operation, qargs: tuple[int, ...]) -> float | None:
    name = operation.name
    if name == "barrier":
        return 0.0
    if name == "delay":
        unit = getattr(operation, "unit", "dt")
        value = float(operation.params[0]) if operation.params else float(operation.duration)
        if unit == "dt":
            return value * (target.dt or 0.0) if target.dt else None
        return value * {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}[unit]
    if name not in target.operation_names:
        return None
    props = target[name]
    if props is None:
        return None
    for key in (qargs, tuple(reversed(qargs)), None):
        if key in props and props[key] is not None:
            return float(props[key].duration or 0.0)
    return None


def scheduled_duration(
    circuit: QuantumCircuit, target: Target, qubit_map: Sequence[int] | None = None
) -> float | None:
    """Length of one shot of ``circuit`` on ``target`` in seconds, scheduled as soon as possible
    per qubit and classical bit. An if/else lasts as long as its longest branch and occupies every
    qubit and bit it touches (the feedforward latency of a real controller is not in the target and
    not included). None when an instruction has no duration."""
    qubit_map = list(range(circuit.num_qubits)) if qubit_map is None else list(qubit_map)
    qubit_time = [0.0] * circuit.num_qubits
    clbit_time = [0.0] * circuit.num_clbits
    for instruction in circuit.data:
        operation = instruction.operation
        qs = [circuit.find_bit(q).index for q in instruction.qubits]
        cs = [circuit.find_bit(c).index for c in instruction.clbits]
        blocks = getattr(operation, "blocks", ())
        if blocks:
            lengths = [
                scheduled_duration(
                    block, target, [qubit_map[qs[i]] for i in range(block.num_qubits)]
                )
                for block in blocks
            ]
            if any(length is None for length in lengths):
                return None
            length = max(lengths)
        else:
            length = _duration(target, operation, tuple(qubit_map[q] for q in qs))
            if length is None:
                return None
        start = max([qubit_time[q] for q in qs] + [clbit_time[c] for c in cs] + [0.0])
        for q in qs:
            qubit_time[q] = start + length
        for c in cs:
            clbit_time[c] = start + length
    return max(qubit_time + clbit_time + [0.0])


def estimate_seconds(circuit: QuantumCircuit, target: Target | None) -> float | None:
    """Scheduled duration of one shot of ``circuit`` on ``target`` (None when durations are
    unknown): ``scheduled_duration``, control flow included."""
    if target is None:
        return None
    return scheduled_duration(circuit, target)


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

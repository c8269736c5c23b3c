"""Targets of an evaluation and the devices behind them: ``--target`` parsing, the offline fake
backends of ``qiskit_ibm_runtime.fake_provider``, sub-devices of a backend's ``Target``, and the
checks a circuit's qubits and control flow need.

Targets (``parse_target``): ``exact`` (outcome probabilities; ``statevector`` is the old name),
``aer`` (ideal shots), ``aer-noisy:<fake backend>`` (the calibrated noise of a fake backend),
``aer-noisy:depolarizing:<p>`` and ``ibm:<backend>``; the executors are in ``backends.noisy``
(simulators) and ``backends.ibm``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from ..errors import QRNNError

TARGET_KINDS = ("exact", "aer", "aer-noisy", "ibm")
EXACT_ALIASES = ("exact", "statevector")  # "statevector" was the exact target's name before


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
        """The device ``target``, named as given."""
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
            f"backend {name} does not support {', '.join(missing)}; dynamic circuits (--protocol "
            "dynamic, and every measured run) need mid-circuit measurement, reset and if_else "
            "(use e.g. fake_boston / fake_kingston, or --protocol replay for a coherent run)"
        )


__all__ = [
    "EXACT_ALIASES",
    "TARGET_KINDS",
    "SubBackend",
    "TargetSpec",
    "active_qubits",
    "check_dynamic_support",
    "fake_backend",
    "fake_backend_names",
    "parse_target",
    "restrict_target",
]

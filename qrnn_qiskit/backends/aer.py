"""Exact Aer statevector executors of the QRNN: a whole-sequence runner and a trainable (autograd)
engine.

* :class:`AerSequenceRunner`: given the angles of every step [B, T, P], runs the simulation-form
  sequence circuit (``save_expectation_value`` of every readout after every step) on
  ``AerSimulator(method= "statevector")`` in ONE ``run()`` call (B parameter bindings) and returns
  the readouts [B, T, R].
* :class:`AerEstimatorEngine`: the quantum half of a QRNN computed by qiskit-machine-learning
  ``EstimatorQNN`` + ``TorchConnector`` over Aer's ``EstimatorV2``, with the interface of
  :class:`~qrnn_qiskit.backends.StatevectorEngine`, so ``QRNNCore`` runs on it unchanged. Its
  "state" is the classical description of the quantum state: the angle history [B, t·P]. The readout
  z_t of a history of t steps is an ``EstimatorQNN`` over the prefix circuit U(θ_t)…U(θ_1)|0⟩, one
  per t. A forward pass over T steps therefore simulates Σ_t t = T(T+1)/2 step circuits per sample,
  and its parameter-shift gradient 2·t·P shifted copies of every prefix: O(T³·P) step circuits per
  sample.
* :class:`BroadcastParamShiftGradient`: the exact parameter-shift rule as an ``EstimatorQNN``
  gradient strategy that sends all shifted circuits of a batch as ONE broadcast pub per prefix
  (qiskit-machine- learning's ``ParamShiftEstimatorGradient`` sends one pub, hence one Aer run, per
  sample × observable × shifted angle).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..circuits import QRNNSpec, readout_observables
from ..circuits.sequence import SequenceCircuit, prefix_circuit, simulation_sequence_circuit
from ..errors import QRNNError

MIN_AER = (0, 17)
MIN_QML = (0, 9)
STATE_BYTES_PER_AMPLITUDE = 16  # complex128
# rows × parameters per broadcast pub in the gradient (bounds the host memory of one Aer run to ~32
# MB)
_MAX_PUB_VALUES = 1 << 22


# ------------------------------------------------------------------------------------------- checks
def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _require(module: str, dist: str, minimum: tuple[int, ...], purpose: str):
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    hint = f"pip install '{dist}>={'.'.join(map(str, minimum))}'"
    try:
        found = version(dist)
    except PackageNotFoundError:
        raise QRNNError(f"{purpose} needs {dist}, which is not installed ({hint})") from None
    if _version_tuple(found) < minimum:
        raise QRNNError(
            f"{purpose} needs {dist} >= {'.'.join(map(str, minimum))}, found {found} ({hint})"
        )
    try:
        return import_module(module)
    except ImportError as exc:
        raise QRNNError(
            f"{purpose}: {dist} {found} does not import ({exc}); reinstall it ({hint})"
        ) from None


def require_aer(purpose: str = "the aer backend"):
    """``qiskit_aer`` if it is installed and recent enough, else a one-line :class:`QRNNError`."""
    return _require("qiskit_aer", "qiskit-aer", MIN_AER, purpose)


def require_qml(purpose: str = "training on aer"):
    """``qiskit_machine_learning`` if it is installed and recent enough, else a
    :class:`QRNNError`."""
    return _require("qiskit_machine_learning", "qiskit-machine-learning", MIN_QML, purpose)


def available_memory_bytes() -> int:
    """Memory the OS reports as available (``MemAvailable``), or total physical memory as a
    fallback."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def statevector_bytes(n_qubits: int, batch: int) -> int:
    """Estimated simulator memory: one complex128 state vector (2^n · 16 bytes) per sample."""
    return (1 << n_qubits) * STATE_BYTES_PER_AMPLITUDE * batch


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def check_memory(
    n_qubits: int, batch: int, *, what: str = "aer", available: int | None = None
) -> int:
    """Raise :class:`QRNNError` when 2^n·16 bytes × batch exceeds the available memory; return the
    estimate."""
    need = statevector_bytes(n_qubits, batch)
    have = available_memory_bytes() if available is None else available
    if need > have:
        raise QRNNError(
            f"{what}: {n_qubits} qubits × batch {batch} needs about {_format_bytes(need)} of "
            "state vectors "
            f"(2^{n_qubits}·16 bytes per sample) but only {_format_bytes(have)} is available; "
            "use fewer qubits or a smaller batch"
        )
    return need


def _as_numpy(values: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().to(torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def aer_estimator(**backend_options: Any):
    """Aer ``EstimatorV2`` on the exact statevector method with ``default_precision=0.0`` (no added
    noise) and runtime parameter binding (measured ~2× faster for the many bindings of
    gradients)."""
    require_aer()
    from qiskit_aer.primitives import EstimatorV2

    options = {"method": "statevector", "runtime_parameter_bind_enable": True, **backend_options}
    return EstimatorV2(options={"backend_options": options, "default_precision": 0.0})


# ------------------------------------------------------------------------------------ sequence
# runner
class AerSequenceRunner:
    """Runs whole QRNN sequences with given per-step angles on
    ``AerSimulator(method="statevector")``.

    ``run(angles [B, T, P]) → readouts [B, T, R]`` in one ``run()`` call: the simulation-form
    circuit of T steps (built once per T and cached) is bound to all B angle sets at once.
    ``runtime_parameter_bind`` lets Aer bind parameters inside one compiled circuit instead of B
    bound copies (faster for sweeps).
    """

    def __init__(
        self, spec: QRNNSpec, *, simulator=None, runtime_parameter_bind: bool = True
    ) -> None:
        require_aer("the aer sequence runner")
        from qiskit_aer import AerSimulator

        self.spec = spec
        self.n_params = spec.n_params
        self.n_readouts = spec.n_readouts
        options = {"runtime_parameter_bind_enable": True} if runtime_parameter_bind else {}
        self.simulator = (
            simulator if simulator is not None else AerSimulator(method="statevector", **options)
        )
        self._circuits: dict[int, SequenceCircuit] = {}

    def circuit(self, steps: int) -> SequenceCircuit:
        """The (cached) simulation-form circuit of ``steps`` steps."""
        if steps not in self._circuits:
            self._circuits[steps] = simulation_sequence_circuit(self.spec, steps)
        return self._circuits[steps]

    def run(self, angles: np.ndarray | torch.Tensor) -> np.ndarray:
        """Readouts [B, T, R] (float64) of the sequences with angles [B, T, P]."""
        values = _as_numpy(angles)
        if (
            values.ndim != 3
            or values.shape[2] != self.n_params
            or values.shape[0] < 1
            or values.shape[1] < 1
        ):
            raise ValueError(
                f"angles must have shape [batch, steps, {self.n_params}], got {tuple(values.shape)}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("angles contain NaN or infinite values")
        batch, steps, _ = values.shape
        check_memory(self.spec.n_qubits, batch, what="aer sequence runner")
        seq = self.circuit(steps)
        binds = {
            p: values[:, t, k] for t, vector in enumerate(seq.angles) for k, p in enumerate(vector)
        }
        result = self.simulator.run(seq.circuit, parameter_binds=[binds], shots=1).result()
        if not result.success:
            raise RuntimeError(f"Aer run failed: {result.status}")
        out = np.empty((batch, steps, self.n_readouts))
        for b in range(batch):
            data = result.data(b)
            for t, labels in enumerate(seq.labels):
                out[b, t] = [float(np.real(data[label])) for label in labels]
        return out


# ------------------------------------------------------------------------------ gradient strategy
try:  # qiskit-machine-learning is a core dependency; require_qml() explains a missing or old one
    from qiskit_machine_learning.gradients import BaseEstimatorGradient as _GradientBase
except ImportError:  # pragma: no cover
    _GradientBase = object  # type: ignore[assignment,misc]

# gates whose parameter enters as a Pauli rotation exp(-iθG/2): the two-term shift rule is exact
_SHIFT_RULE_GATES = [
    "x",
    "y",
    "z",
    "h",
    "rx",
    "ry",
    "rz",
    "p",
    "cx",
    "cy",
    "cz",
    "ryy",
    "rxx",
    "rzz",
    "rzx",
]


def _observable_key(op) -> Any:
    from qiskit.quantum_info import SparsePauliOp

    if isinstance(op, SparsePauliOp):
        return ("spo", tuple(op.paulis.to_labels()), tuple(np.round(op.coeffs, 15).tolist()))
    return ("id", id(op))


class BroadcastParamShiftGradient(_GradientBase):
    """Exact parameter-shift gradients for ``EstimatorQNN``, one broadcast pub per circuit.

    ∂⟨O⟩/∂θ_k = (⟨O⟩(θ + π/2·e_k) − ⟨O⟩(θ − π/2·e_k)) / 2 for Pauli-rotation gates, exactly as
    qiskit-machine-learning's ``ParamShiftEstimatorGradient``; but where that sends one pub (one Aer
    run) per sample × observable × shifted angle, this de-duplicates the shifted parameter sets
    across observables and sends them as one pub (observables [K, 1] × parameter sets [U]), so one
    Aer run computes every observable of every shifted circuit.
    """

    def __init__(self, estimator, options=None) -> None:
        require_qml()
        super().__init__(estimator, options)

    def _run(self, circuits, observables, parameter_values, parameters, **options):
        from qiskit.providers import Options
        from qiskit_machine_learning.gradients import EstimatorGradientResult

        g_circuits, g_values, g_parameters = self._preprocess(
            circuits, parameter_values, parameters, _SHIFT_RULE_GATES
        )
        groups: dict[int, list[int]] = {}
        for i, circuit in enumerate(g_circuits):
            groups.setdefault(id(circuit), []).append(i)
        gradients: list[np.ndarray | None] = [None] * len(g_circuits)
        for members in groups.values():
            circuit = g_circuits[members[0]]
            index = {p: k for k, p in enumerate(circuit.parameters)}
            rows: list[np.ndarray] = []
            n_rows = 0
            row_start: dict[tuple, int] = {}
            obs_index: dict[Any, int] = {}
            obs_list = []
            placement = []  # per member: (first row, number of shifted angles, observable index)
            for i in members:
                base_values = np.asarray(g_values[i], dtype=np.float64)
                shifted = [index[p] for p in g_parameters[i]]
                key = (base_values.tobytes(), tuple(shifted))
                if key not in row_start:
                    row_start[key] = n_rows
                    offsets = np.zeros((len(shifted), len(base_values)))
                    offsets[np.arange(len(shifted)), shifted] = np.pi / 2
                    rows.append(np.concatenate([base_values + offsets, base_values - offsets]))
                    n_rows += 2 * len(shifted)
                okey = _observable_key(observables[i])
                if okey not in obs_index:
                    obs_index[okey] = len(obs_list)
                    obs_list.append(observables[i])
                placement.append((row_start[key], len(shifted), obs_index[okey]))
            if n_rows == 0:
                for i in members:
                    gradients[i] = np.zeros(0)
                continue
            values = np.concatenate(rows)
            chunk = max(1, _MAX_PUB_VALUES // max(1, circuit.num_parameters))
            column = [[op] for op in obs_list]
            pubs = [(circuit, column, values[lo : lo + chunk]) for lo in range(0, n_rows, chunk)]
            results = self._estimator.run(pubs).result()
            evs = np.concatenate(
                [
                    np.asarray(r.data.evs, dtype=np.float64).reshape(len(obs_list), -1)
                    for r in results
                ],
                axis=1,
            )
            for i, (start, m, k) in zip(members, placement):
                gradients[i] = (evs[k, start : start + m] - evs[k, start + m : start + 2 * m]) / 2
        metadata = [{"parameters": p} for p in g_parameters]
        result = EstimatorGradientResult(
            gradients=gradients, metadata=metadata, options=Options(**options)
        )
        return self._postprocess(result, circuits, parameter_values, parameters)


# ------------------------------------------------------------------------------------- cost model
@dataclass(frozen=True)
class AerTiming:
    """Aer EstimatorV2 costs measured on this machine for one spec, in seconds: per ``run()`` call
    (job), per pub (one Aer run), per parameter binding (one experiment: Aer's per-experiment
    overhead), per simulated step circuit U(θ) and per expectation value (binding × observable:
    Aer's save and the primitive's result loop)."""

    per_run_s: float
    per_pub_s: float
    per_binding_s: float
    per_step_circuit_s: float
    per_expectation_s: float


@dataclass(frozen=True)
class AerCost:
    """Work and estimated time of one pass of the Aer engine over B samples × T steps."""

    batch: int
    steps: int
    backward: bool
    runs: int  # Estimator run() calls (jobs)
    pubs: int  # Estimator pubs, each one Aer run
    bindings: int  # parameter bindings (Aer experiments)
    step_circuits: int  # simulated step circuits U(θ): Σ bindings × prefix length
    expectations: int  # expectation values computed: Σ bindings × observables per pub
    seconds: float

    def describe(self) -> str:
        kind = "forward+backward" if self.backward else "forward"
        return (
            f"{kind} of B={self.batch} × T={self.steps}: {self.pubs:,} Aer runs, "
            f"{self.bindings:,} bindings, "
            f"{self.step_circuits:,} simulated step circuits, ≈{_format_seconds(self.seconds)}"
        )


def _format_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


_TIMINGS: dict[tuple, AerTiming] = {}


def calibrate(
    spec: QRNNSpec, estimator=None, *, bindings: int = 48, steps: int = 3, repeats: int = 2
) -> AerTiming:
    """Measure :class:`AerTiming` for ``spec`` with five small Estimator runs (cached per spec; ~1
    s)."""
    key = (spec.n_qubits, spec.layers, spec.entangler, spec.n_readouts)
    if key in _TIMINGS and estimator is None:
        return _TIMINGS[key]
    estimator = estimator or aer_estimator()
    observables = readout_observables(spec)
    one_step = prefix_circuit(spec, 1).circuit
    deep = prefix_circuit(spec, steps).circuit
    rng = np.random.default_rng(0)

    def best(circuit, k: int, n_obs: int, n_pubs: int = 1) -> float:
        values = rng.uniform(-np.pi, np.pi, (k, circuit.num_parameters))
        column = [[op] for op in observables[:n_obs]]
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            estimator.run([(circuit, column, values)] * n_pubs).result()
            times.append(time.perf_counter() - started)
        return min(times)

    n_obs = len(observables)
    single = best(one_step, 1, 1)
    many = best(one_step, bindings, 1)
    many_deep = best(deep, bindings, 1)
    many_obs = best(one_step, bindings, n_obs) if n_obs > 1 else many
    per_step = max((many_deep - many) / (bindings * (steps - 1)), 1e-8)
    per_expectation = max((many_obs - many) / (bindings * max(n_obs - 1, 1)), 1e-8)
    per_binding = max((many - single) / (bindings - 1) - per_step - per_expectation, 1e-8)
    pubs = 8
    per_pub = max(
        (best(one_step, 1, 1, pubs) - single) / (pubs - 1)
        - per_binding
        - per_step
        - per_expectation,
        1e-6,
    )
    per_run = max(single - per_pub - per_binding - per_step - per_expectation, 1e-6)
    timing = AerTiming(per_run, per_pub, per_binding, per_step, per_expectation)
    _TIMINGS[key] = timing
    return timing


def estimate_cost(
    spec: QRNNSpec,
    batch: int,
    steps: int,
    *,
    backward: bool = True,
    timing: AerTiming | None = None,
    broadcast: bool = True,
) -> AerCost:
    """Work of :class:`AerEstimatorEngine` over B × T, and its time under ``timing``.

    Per prefix length t = 1..T: EstimatorQNN's forward sends R pubs of B bindings (one observable
    each); the backward sends one pub of B·2·t·P shifted bindings × R observables
    (``broadcast=True``), or B·R·2·t·P pubs of one binding each (qiskit-machine-learning's
    ``ParamShiftEstimatorGradient``). Every binding of prefix t simulates t step circuits: O(T²·B·R)
    forward and O(T³·B·P) backward.
    """
    r, p = spec.n_readouts, spec.n_params
    runs = pubs = bindings = circuits = expectations = 0
    for t in range(1, steps + 1):
        runs += 2 if backward else 1
        pubs += r
        bindings += r * batch
        circuits += r * batch * t
        expectations += r * batch
        if backward:
            shifted = 2 * t * p * batch
            pubs += 1 if broadcast else shifted * r
            bindings += shifted if broadcast else shifted * r
            circuits += (shifted if broadcast else shifted * r) * t
            expectations += shifted * r
    seconds = 0.0
    if timing is not None:
        seconds = (
            runs * timing.per_run_s
            + pubs * timing.per_pub_s
            + bindings * timing.per_binding_s
            + circuits * timing.per_step_circuit_s
            + expectations * timing.per_expectation_s
        )
    return AerCost(batch, steps, backward, runs, pubs, bindings, circuits, expectations, seconds)


# ------------------------------------------------------------------------------- trainable engine
class AerEstimatorEngine:
    """The QRNN's quantum half on Aer through ``EstimatorQNN`` + ``TorchConnector`` (exact,
    autograd).

    Same interface as :class:`~qrnn_qiskit.backends.StatevectorEngine` (``initial_state``, ``step``,
    ``readouts``, ``n_params``, ``n_readouts``), so ``QRNNCore(input_size, config, engine=...)``
    trains on it unchanged. The state is the angle history [B, t·P] (float32): it determines
    ψ_t = U(θ_t)…U(θ_1)|0⟩ exactly, and ``readouts`` evaluates that prefix on Aer's EstimatorV2 with
    ``default_precision=0.0``. Gradients reach every angle (``input_gradients=True``).

    Args:
        spec: the step circuit's spec.
        estimator: a ``BaseEstimatorV2`` (default: :func:`aer_estimator`, exact statevector).
        gradient: an ``EstimatorQNN`` gradient strategy (default:
        :class:`BroadcastParamShiftGradient`
            over ``estimator``; pass qiskit-machine-learning's ``ParamShiftEstimatorGradient`` for
            its one-pub-per-shift behaviour).
    """

    def __init__(self, spec: QRNNSpec, *, estimator=None, gradient=None) -> None:
        require_aer()
        require_qml()
        self.spec = spec
        self.n_qubits = spec.n_qubits
        self.n_params = spec.n_params
        self.observables = readout_observables(spec)
        self.n_readouts = len(self.observables)
        self.estimator = estimator if estimator is not None else aer_estimator()
        self.gradient = (
            gradient if gradient is not None else BroadcastParamShiftGradient(self.estimator)
        )
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        # ⟨0…0|O|0…0⟩: only terms made of I and Z contribute
        z0 = []
        for op in self.observables:
            value = 0.0
            for label, coeff in op.to_list():
                if set(label) <= {"I", "Z"}:
                    value += float(np.real(coeff))
            z0.append(value)
        self._z0 = torch.tensor(z0, dtype=self.dtype)
        self._connectors: dict[
            int, Any
        ] = {}  # prefix length -> TorchConnector (not registered as modules)

    def connector(self, steps: int):
        """The (cached) ``TorchConnector(EstimatorQNN)`` of the ``steps``-step prefix: [B, steps·P]
        → [B, R]."""
        if steps not in self._connectors:
            from qiskit_machine_learning.connectors import TorchConnector
            from qiskit_machine_learning.neural_networks import EstimatorQNN

            prefix = prefix_circuit(self.spec, steps)
            qnn = EstimatorQNN(
                circuit=prefix.circuit,
                estimator=self.estimator,
                observables=self.observables,
                input_params=prefix.flat_parameters(),
                weight_params=[],
                gradient=self.gradient,
                input_gradients=True,
                default_precision=0.0,
            )
            self._connectors[steps] = TorchConnector(qnn)
        return self._connectors[steps]

    def initial_state(self, batch: int) -> torch.Tensor:
        """The empty angle history [batch, 0] (ψ_0 = |0…0⟩); checks simulator memory first."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        check_memory(self.n_qubits, batch, what="aer backend")
        return torch.zeros(batch, 0, dtype=self.dtype)

    def _steps_of(self, state: torch.Tensor) -> int:
        if state.dim() != 2 or state.shape[1] % self.n_params:
            raise ValueError(
                f"state must be an angle history [batch, t·{self.n_params}], got "
                f"{tuple(state.shape)}"
            )
        return state.shape[1] // self.n_params

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Append the step's angles [B, P] to the history."""
        self._steps_of(state)
        if angles.dim() != 2 or angles.shape != (state.shape[0], self.n_params):
            raise ValueError(
                f"angles must have shape [{state.shape[0]}, {self.n_params}], got "
                f"{tuple(angles.shape)}"
            )
        return torch.cat([state, angles.to(self.dtype)], dim=1)

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """Readouts [B, R] of ψ_t for an angle history of t steps (exact Aer expectation values)."""
        steps = self._steps_of(state)
        if steps == 0:
            return self._z0.expand(state.shape[0], -1).clone()
        return self.connector(steps)(state)

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor, tape: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` then ``readouts``. ``tape`` (the torch engine's reversible-backward record) is
        not needed here: the angle history already is the whole state, and autograd stores only
        angles."""
        state = self.step(state, angles)
        return state, self.readouts(state)

    def estimate(self, batch: int, steps: int, *, backward: bool = True) -> AerCost:
        """Estimated cost of a pass over B × T on this machine (calibrated on first use)."""
        broadcast = isinstance(self.gradient, BroadcastParamShiftGradient)
        return estimate_cost(
            self.spec,
            batch,
            steps,
            backward=backward,
            timing=calibrate(self.spec),
            broadcast=broadcast,
        )

    def to(self, device: str | torch.device) -> AerEstimatorEngine:
        if torch.device(device).type != "cpu":
            raise QRNNError("the aer backend runs on the CPU; use --backend statevector for GPUs")
        return self

    def __repr__(self) -> str:
        return (
            f"AerEstimatorEngine(n_qubits={self.n_qubits}, params={self.n_params}, "
            f"readouts={self.n_readouts}, gradient={type(self.gradient).__name__})"
        )


__all__ = [
    "AerCost",
    "AerEstimatorEngine",
    "AerSequenceRunner",
    "AerTiming",
    "BroadcastParamShiftGradient",
    "aer_estimator",
    "available_memory_bytes",
    "calibrate",
    "check_memory",
    "estimate_cost",
    "require_aer",
    "require_qml",
    "statevector_bytes",
]

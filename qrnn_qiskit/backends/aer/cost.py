"""The cost model of training on Aer (prefix circuits and parameter shift: O(T³·P) step circuits per
sample), calibrated on this machine."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...circuits import QRNNSpec, readout_observables
from ...circuits.sequence import prefix_circuit
from .requirements import aer_estimator


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
            f"{self.step_circuits:,} simulated step circuits, ≈{format_seconds(self.seconds)}"
        )


def format_seconds(s: float) -> str:
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

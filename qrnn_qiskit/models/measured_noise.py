"""A fake backend's calibrated noise inside the measured QRNN's exact simulation
(``qrnn train --model mqrnn --train-noise fake_kingston``).

The measured model's state is already mixed, so device noise enters as channels of the
:class:`~qrnn_qiskit.models.measured.StepNoise` hook, built here from
:mod:`qrnn_qiskit.backends.calibration` at the layout an evaluation of the run would pin:

* layout: the measured circuit of the run (2 steps: the first without, the second with its
  feedforward branches; data register and, for weak measurement, one ancilla per measured qubit)
  placed by ``layout.choose_layout`` (optimization level ``level``, ``seed``, ESP re-embedding),
  the function the Aer-noisy evaluations use; data qubit q sits on ``data[q]``, ancilla r on
  ``ancillas[r]``;
* gate errors (``after_unitary``): the step circuit transpiled for the target at the data layout
  (same level and seed); per data qubit one depolarizing channel composing the depolarizing
  channels of its native 1q gates (p_g = r_g·2, r_g the calibrated error; composed
  p = 1 − Π(1 − p_g)); per coupled pair one two-qubit depolarizing channel composing its native 2q
  gates (p = r·4/3 each);
* measurement (``coupling`` and ``confusion``): the weak coupling block (H, RZZ(α), S†, H)
  transpiled on (data M[r], ancilla r): its 2q gates' composed depolarizing p as the exact
  instrument of ``StepNoise.coupling``; the ancilla's 1q gates' composed depolarizing p_a flips the
  bit with probability p_a/2 (exact: a depolarized ancilla before a Z measurement is a random bit);
  the data qubit's 1q gates in the block join its after-measure depolarizing; the readout qubit's
  ``measure`` error e flips the bit symmetrically; both flips compose to one confusion matrix;
* the window (``after_measure``): every data qubit relaxes (T1, T2 of its physical qubit) over
  one window per step: max over measured bits of the coupling block's scheduled duration (weak)
  + ``measure_2`` (where the target lists it, else ``measure``) + ``reset`` of the readout qubit.

Approximations (also in docs/measured.md): all gate errors of U(θ) act after U (1q depolarizing
commutes with 1q gates, but not with the entanglers between them); the coupling's 2q error acts
after the whole coupling, not between its two CZ; if the step or the coupling needs routing at the
pinned layout, its SWAPs' gates are charged to the data qubits they touch (``routed`` in the
record); gate durations of U(θ) add no relaxation (the calibrated gate errors stand for it); the
ancillas' own relaxation, reset errors and the feedforward latency are not modelled; the layout is
the initial one of the evaluation's transpiled circuit (routing may move qubits later).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..backends.calibration import (
    depolarizing_kraus,
    depolarizing_parameter,
    device_calibration,
    readout_confusion,
    supports_dynamic,
    thermal_relaxation_kraus,
)
from ..circuits import QRNNSpec, step_circuit
from ..circuits.measured import MeasurementSpec, measured_circuit, weak_coupling_block
from ..errors import QRNNError
from .measured import Channel, StepNoise

LAYOUT_STEPS = 2  # the widest circuit whose layout is pinned: step 0 and one step with feedforward


@dataclass(frozen=True)
class MeasuredDeviceNoise:
    """The hook (``noise``) and what it was built from (``record``, JSON-ready)."""

    noise: StepNoise
    record: dict


def _compose(ps) -> float:
    """Depolarizing channels of the same support compose: 1 − Π(1 − p)."""
    keep = 1.0
    for p in ps:
        keep *= 1.0 - p
    return 1.0 - keep


def layout_circuit(spec: QRNNSpec, measurement: MeasurementSpec, seed: int = 0):
    """The measured circuit (LAYOUT_STEPS steps, random angles, α = π/4) whose layout is pinned."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(
        -math.pi, math.pi, size=(LAYOUT_STEPS, measurement.angle_sets, spec.n_params)
    )
    alphas = [math.pi / 4] * measurement.m if measurement.kind == "weak" else None
    return measured_circuit(spec, measurement, angles, alphas)


def measured_layout(
    backend: str,
    spec: QRNNSpec,
    measurement: MeasurementSpec,
    *,
    optimization_level: int = 3,
    seed: int = 0,
):
    """(data physical qubits, ancilla physical qubits, PinnedLayout) of the measured circuit on
    ``backend`` as ``layout.choose_layout`` pins it."""
    from ..backends.layout import choose_layout
    from ..backends.targets import fake_backend

    device = fake_backend(backend)
    if not supports_dynamic(device.target):
        raise QRNNError(
            f"{device.name} has no mid-circuit measure + reset + if_else (dynamic circuits): the "
            "measured QRNN cannot run there; use e.g. fake_kingston or fake_boston"
        )
    pinned = choose_layout(
        layout_circuit(spec, measurement, seed),
        device.target,
        optimization_level=optimization_level,
        seed=seed,
        method="esp",
        device=device.name,
    )
    n = spec.n_qubits
    return list(pinned.initial[:n]), list(pinned.initial[n:]), pinned


def _native(circuit, target, layout, optimization_level: int, seed: int):
    """The circuit transpiled for ``target`` at ``layout``: (Counter of (name, physical qargs),
    scheduled seconds, routed: whether it touches qubits outside ``layout``)."""
    from qiskit.transpiler import generate_preset_pass_manager

    from ..backends.layout import operation_counts

    placed = generate_preset_pass_manager(
        optimization_level, target=target, seed_transpiler=seed, initial_layout=list(layout)
    ).run(circuit)
    counts = operation_counts(placed)
    used = {q for _, qargs in counts for q in qargs}
    final = placed.layout.final_index_layout(filter_ancillas=True) if placed.layout else None
    routed = bool(used - set(layout)) or (final is not None and list(final) != list(layout))
    duration = placed.estimate_duration(target, unit="s")
    return counts, float(duration), routed


def _gate_error(target, name: str, qargs: tuple[int, ...]) -> float:
    from ..backends.layout import instruction_error

    error = instruction_error(target, name, qargs)
    if error is None:
        raise QRNNError(f"the target lists no error for {name} on qubits {list(qargs)}")
    return error


def measured_device_noise(
    backend: str,
    spec: QRNNSpec,
    measurement: MeasurementSpec,
    *,
    optimization_level: int = 3,
    seed: int = 0,
) -> MeasuredDeviceNoise:
    """The :class:`StepNoise` of ``backend``'s calibrations for the measured QRNN (module
    docstring) and its record."""
    from ..backends.targets import fake_backend

    device = fake_backend(backend)
    target = device.target
    data, ancillas, pinned = measured_layout(
        backend, spec, measurement, optimization_level=optimization_level, seed=seed
    )
    n, weak = spec.n_qubits, measurement.kind == "weak"
    calibration = device_calibration(backend, layout=data + ancillas)
    qubit = {c.physical: c for c in calibration.qubits}
    logical = {p: q for q, p in enumerate(data)}

    # U(θ): native gates of the step circuit at the data layout
    counts, step_seconds, step_routed = _native(
        step_circuit(spec), target, data, optimization_level, seed
    )
    one: dict[int, list[float]] = {q: [] for q in range(n)}
    two: dict[tuple[int, int], list[float]] = {}
    gates: dict[str, float] = {}
    for (name, qargs), count in sorted(counts.items()):
        if name in ("measure", "reset"):
            continue
        gates[f"{name}{list(qargs)}"] = count
        error = _gate_error(target, name, qargs)
        inside = [logical[p] for p in qargs if p in logical]
        if not inside:  # a routing gate between two qubits outside the data layout
            continue
        if len(inside) == 1:  # a 1q gate, or a routing gate half outside
            p = depolarizing_parameter(error, len(qargs))
            one[inside[0]] += [p] * int(round(count))
        elif len(inside) == 2:
            key = tuple(sorted(inside))
            two.setdefault(key, []).extend([depolarizing_parameter(error, 2)] * int(round(count)))
    after_unitary = [
        Channel((q,), tuple(depolarizing_kraus(_compose(ps), 1)))
        for q, ps in one.items()
        if _compose(ps) > 0
    ]
    after_unitary += [
        Channel(pair, tuple(depolarizing_kraus(_compose(ps), 2)))
        for pair, ps in sorted(two.items())
    ]

    # the measurement window, the coupling and the readout of every measured bit
    measure_side: dict[int, list[float]] = {q: [] for q in range(n)}
    coupling, flips, windows, bits = [], [], [], []
    for r, q in enumerate(measurement.qubits):
        readout = ancillas[r] if weak else data[q]
        cal = qubit[readout]
        op = "measure_2" if cal.measure_2_duration else "measure"
        measure = cal.measure_2_duration or cal.measure_duration
        if measure is None or cal.reset_duration is None:
            raise QRNNError(f"{device.name} lists no measure/reset duration for qubit {readout}")
        entry = {
            "bit": r,
            "data_qubit": q,
            "readout_physical": readout,
            "measure": op,
            "measure_s": measure,
            "reset_s": cal.reset_duration,
            "measure_error": _gate_error(target, op, (readout,)),
        }
        window = measure + cal.reset_duration
        p_coupling = p_ancilla = 0.0
        if weak:
            block_counts, block_seconds, block_routed = _native(
                weak_coupling_block(math.pi / 4), target, [data[q], readout], 1, seed
            )
            ps2, psa = [], []
            for (name, qargs), count in block_counts.items():
                error = _gate_error(target, name, qargs)
                if len(qargs) == 2:
                    ps2 += [depolarizing_parameter(error, 2)] * int(round(count))
                elif qargs[0] == data[q]:
                    measure_side[q] += [depolarizing_parameter(error, 1)] * int(round(count))
                else:
                    psa += [depolarizing_parameter(error, 1)] * int(round(count))
            p_coupling, p_ancilla = _compose(ps2), _compose(psa)
            window += block_seconds
            entry |= {
                "coupling_s": block_seconds,
                "coupling_2q_gates": len(ps2),
                "coupling_depolarizing": p_coupling,
                "ancilla_1q_depolarizing": p_ancilla,
                "coupling_routed": block_routed,
            }
        e, g = entry["measure_error"], p_ancilla / 2
        flip = e * (1 - g) + g * (1 - e)
        entry |= {"bit_flip": flip, "window_s": window}
        coupling.append(p_coupling)
        flips.append(flip)
        windows.append(window)
        bits.append(entry)
    window = max(windows)
    confusion = np.stack([readout_confusion(f).T for f in flips])  # [r, observed, true]

    after_measure, relax = [], []
    for q in range(n):
        cal = qubit[data[q]]
        if cal.t1 is None or cal.t2 is None:
            raise QRNNError(f"{device.name} lists no T1/T2 for qubit {data[q]}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kraus = thermal_relaxation_kraus(cal.t1, cal.t2, window)
        after_measure.append(Channel((q,), tuple(kraus)))
        relax.append(
            {
                "data_qubit": q,
                "physical": data[q],
                "t1_s": cal.t1,
                "t2_s": cal.t2,
                "t2_clipped_to_2t1": bool(caught),
                "decay_z": 1 - math.exp(-window / cal.t1),
                "coherence": math.exp(-window / min(cal.t2, 2 * cal.t1)),
            }
        )
        p = _compose(measure_side[q])
        if p > 0:
            after_measure.append(Channel((q,), tuple(depolarizing_kraus(p, 1))))
    noise = StepNoise(
        after_unitary=tuple(after_unitary),
        after_measure=tuple(after_measure),
        confusion=confusion,
        coupling=tuple(coupling) if weak else (),
    )
    record = {
        "backend": device.name,
        "optimization_level": optimization_level,
        "seed": seed,
        "layout": {"data": data, "ancillas": ancillas, "esp": pinned.esp, "method": pinned.method},
        "step": {
            "native_gates": gates,
            "routed": step_routed,
            "duration_s": step_seconds,
            "depolarizing_1q": {str(q): _compose(ps) for q, ps in one.items()},
            "depolarizing_2q": {f"{a},{b}": _compose(ps) for (a, b), ps in sorted(two.items())},
        },
        "window_s": window,
        "bits": bits,
        "relaxation": relax,
        "measure_side_depolarizing_1q": {str(q): _compose(ps) for q, ps in measure_side.items()},
        "channels": {
            "after_unitary": [list(c.qubits) for c in after_unitary],
            "after_measure": [list(c.qubits) for c in after_measure],
        },
    }
    return MeasuredDeviceNoise(noise, record)


__all__ = ["LAYOUT_STEPS", "MeasuredDeviceNoise", "measured_device_noise", "measured_layout"]

"""Idle relaxation on ``aer-noisy:<fake backend>``: a qubit waiting through other qubits' measure +
reset windows decays as exp(−t/T2) (backends.relaxation), which ``NoiseModel.from_backend`` alone
does not charge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit

from qrnn_qiskit.backends.noisy import AerExecutor, parse_target
from qrnn_qiskit.backends.relaxation import delay_seconds, relax_idle

BACKEND = "fake_marrakesh"  # reset, measure and if_else in its target (QISKIT_NOTES)
WINDOWS = 12
SHOTS = 4000


def idle_circuit(windows: int, dynamic: bool) -> QuantumCircuit:
    """Qubit 0 in |+⟩ waits while qubit 1 is measured and reset ``windows`` times; then ⟨X⟩ of
    qubit 0 is measured into the last bit. ``dynamic`` adds, per window, the if_else the dynamic
    protocol uses (an X on the data qubit selected by the bit just measured; X|+⟩ = |+⟩)."""
    circuit = QuantumCircuit(2, windows + 1)
    circuit.h(0)
    circuit.barrier()
    for k in range(windows):
        circuit.measure(1, k)
        circuit.reset(1)
        if dynamic:
            with circuit.if_test((circuit.clbits[k], 1)) as otherwise:
                circuit.x(0)
            with otherwise:
                circuit.x(0)
                circuit.x(0)
    circuit.barrier()
    circuit.h(0)
    circuit.measure(0, windows)
    return circuit


def x_expectation(counts: dict) -> float:
    shots = sum(counts.values())
    return sum((1 if key[0] == "0" else -1) * n for key, n in counts.items()) / shots


def run_idle(dynamic: bool, relax: bool) -> tuple[float, AerExecutor, QuantumCircuit]:
    """⟨X⟩ of the idle qubit through the project's own aer-noisy executor (prepare + run)."""
    executor = AerExecutor(parse_target(f"aer-noisy:{BACKEND}"), relax_idle=relax)
    (isa,) = executor.prepare([idle_circuit(WINDOWS, dynamic)], dynamic=dynamic)
    (counts,) = executor.run([(isa, None)], shots=SHOTS, seed=7)
    return x_expectation(counts[0]), executor, isa


def analytic(executor: AerExecutor) -> tuple[float, float, float]:
    """(prediction, idle seconds, T2) from the target alone: the data qubit waits WINDOWS × (measure
    + reset of the other qubit) and dephases with its T2 (clipped to 2·T1); its readout error
    shrinks ⟨X⟩ by 1 − 2e."""
    target = executor.calibration_target
    data = executor.physical_qubits.index(executor.layout.initial[0])
    other = executor.physical_qubits.index(executor.layout.initial[1])
    props = target.qubit_properties[data]
    t2 = min(props.t2, 2 * props.t1)
    window = target["measure"][(other,)].duration + target["reset"][(other,)].duration
    idle = WINDOWS * window
    readout = target["measure"][(data,)].error
    return math.exp(-idle / t2) * (1 - 2 * readout), idle, t2


@pytest.mark.parametrize("dynamic", [False, True], ids=["measure+reset", "with-if_else"])
def test_idle_qubit_dephases_with_t2_only_with_the_pass(dynamic):
    relaxed, executor, isa = run_idle(dynamic, relax=True)
    expected, idle, t2 = analytic(executor)
    sigma = math.sqrt(max(1 - expected**2, 0.0) / SHOTS)
    # 4σ shot noise + 0.02 for what the formula leaves out (sx errors, relaxation during the
    # data qubit's own gates, the X gates of the branches)
    assert abs(relaxed - expected) < 4 * sigma + 0.02, (relaxed, expected, idle, t2)
    assert relaxed < 0.9 and expected < 0.9
    record = executor.idle_relaxation
    data = str(executor.layout.initial[0])
    assert record["applied"] and record["t2_s"][data] == pytest.approx(t2)
    # the scheduler's idle time of the data qubit is the windows (+ the branches' X gates)
    assert idle <= record["idle_seconds_per_qubit"][data] < idle * 1.05
    # without the pass (plain NoiseModel.from_backend) the same ISA circuit keeps ⟨X⟩ ≈ 1: the
    # model charges relaxation to gates, not to a qubit waiting for another one's readout
    plain, plain_executor, _ = run_idle(dynamic, relax=False)
    assert plain_executor.idle_relaxation["applied"] is False
    assert plain > 0.93 and plain - relaxed > 0.1


def test_relaxed_circuit_has_no_delays_left_to_charge_twice():
    executor = AerExecutor(parse_target(f"aer-noisy:{BACKEND}"))
    (isa,) = executor.prepare([idle_circuit(3, True)], dynamic=True)
    relaxed = relax_idle(isa, executor.calibration_target)
    assert sum(relaxed.idle_seconds) > 0

    def names(circuit):
        for instruction in circuit.data:
            yield instruction.operation.name
            for block in getattr(instruction.operation, "blocks", ()):
                yield from names(block)

    ops = list(names(relaxed.circuit))
    assert "delay" not in ops and "quantum_channel" in ops
    assert delay_seconds(relaxed.circuit, executor.calibration_target.dt) == [0.0, 0.0]


def test_depolarizing_target_is_unchanged():
    executor = AerExecutor(parse_target("aer-noisy:depolarizing:0.01"))
    (isa,) = executor.prepare([idle_circuit(2, False)])
    assert executor.idle_relaxation is None and executor._noisy(isa) is isa
    (counts,) = executor.run([(isa, None)], shots=200, seed=1)
    assert np.isclose(sum(counts[0].values()), 200)


def test_merge_delays_gives_one_delay_per_idle_interval_with_the_same_idle_time():
    from qiskit.circuit import Delay

    from qrnn_qiskit.backends.relaxation import NEGLIGIBLE_RELAXATION, _relax_delays, merge_delays

    dt = 4e-9
    circuit = QuantumCircuit(2, 1)
    circuit.delay(16, 0, "dt")
    circuit.sx(1)
    circuit.barrier()
    circuit.delay(8, 0, "dt")  # same interval of qubit 0: only qubit 1's sx and a barrier between
    circuit.sx(0)
    circuit.delay(16, 0, "dt")  # a new interval after qubit 0's sx
    circuit.measure(1, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.delay(16, 0, "dt")
        circuit.delay(16, 1, "dt")
        circuit.barrier()
        circuit.delay(16, 0, "dt")
        circuit.x(1)
    merged = merge_delays(circuit, dt)

    def delays(c):
        return [
            (c.find_bit(i.qubits[0]).index, round(i.operation.duration / dt))
            for i in c.data
            if isinstance(i.operation, Delay)
        ]

    assert delays(merged) == [(0, 24), (0, 16)]
    [branch] = [i.operation.blocks[0] for i in merged.data if i.operation.name == "if_else"]
    assert sorted(delays(branch)) == [(0, 32), (1, 16)]
    assert np.allclose(delay_seconds(merged, dt), delay_seconds(circuit, dt))
    # an interval below NEGLIGIBLE_RELAXATION in t/T1 and t/T2 gets no channel; others one each
    tiny = QuantumCircuit(1)
    tiny.delay(NEGLIGIBLE_RELAXATION * 100e-6 / 2, 0, "s")
    tiny.delay(1e-6, 0, "s")
    relaxed = _relax_delays(merge_delays(tiny, dt), [100e-6], [100e-6], dt)
    assert relaxed.count_ops().get("quantum_channel", 0) == 1
    relaxed = _relax_delays(tiny, [100e-6], [100e-6], dt)
    assert relaxed.count_ops().get("quantum_channel", 0) == 1

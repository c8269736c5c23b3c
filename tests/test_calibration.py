"""backends.calibration: per-qubit numbers of a pinned layout and numpy noise channels that agree
with qiskit-aer's to 1e-12."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit.quantum_info import Kraus, SuperOp
from qiskit_aer.noise import ReadoutError, depolarizing_error, thermal_relaxation_error

from qrnn_qiskit.backends.calibration import (
    depolarizing_kraus,
    depolarizing_parameter,
    device_calibration,
    readout_confusion,
    thermal_relaxation_kraus,
)
from qrnn_qiskit.backends.targets import fake_backend
from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.errors import QRNNError


def superop(kraus: list[np.ndarray]) -> np.ndarray:
    return SuperOp(Kraus(kraus)).data


@pytest.mark.parametrize(
    "t1, t2, t",
    [(100e-6, 80e-6, 5e-6), (50e-6, 100e-6, 111e-6), (200e-6, 30e-6, 0.0), (1e-4, 1e-4, 1e-3)],
)
def test_thermal_relaxation_matches_aer(t1, t2, t):
    ours = thermal_relaxation_kraus(t1, t2, t)
    assert all(k.dtype == np.complex128 and k.shape == (2, 2) for k in ours)
    aer = SuperOp(thermal_relaxation_error(t1, t2, t).to_quantumchannel()).data
    assert np.allclose(superop(ours), aer, atol=1e-12, rtol=0)
    # ⟨X⟩ of |+⟩ decays as exp(−t/T2)
    plus = np.full((2, 2), 0.5, dtype=np.complex128)
    rho = sum(k @ plus @ k.conj().T for k in ours)
    assert 2 * rho[0, 1].real == pytest.approx(math.exp(-t / t2), abs=1e-12)


def test_unphysical_t2_is_clipped_with_a_warning():
    with pytest.warns(UserWarning, match="clipped to 2·T1"):
        ours = thermal_relaxation_kraus(50e-6, 150e-6, 20e-6)
    aer = SuperOp(thermal_relaxation_error(50e-6, 100e-6, 20e-6).to_quantumchannel()).data
    assert np.allclose(superop(ours), aer, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("p", [0.0, 1e-3, 0.2, 1.0])
def test_depolarizing_matches_aer(n, p):
    ours = depolarizing_kraus(p, n)
    assert all(k.dtype == np.complex128 and k.shape == (2**n, 2**n) for k in ours)
    aer = SuperOp(depolarizing_error(p, n).to_quantumchannel()).data
    assert np.allclose(superop(ours), aer, atol=1e-12, rtol=0)


def test_depolarizing_parameter_gives_the_average_gate_error():
    from qiskit.quantum_info import average_gate_fidelity

    for n, error in ((1, 2.5e-4), (2, 3.9e-3)):
        p = depolarizing_parameter(error, n)
        channel = Kraus(depolarizing_kraus(p, n))
        assert 1 - average_gate_fidelity(channel) == pytest.approx(error, rel=1e-12)


def test_readout_confusion_matches_aer():
    assert np.array_equal(
        readout_confusion(0.02, 0.05), ReadoutError([[0.98, 0.02], [0.05, 0.95]]).probabilities
    )
    assert np.array_equal(readout_confusion(0.01), [[0.99, 0.01], [0.01, 0.99]])
    with pytest.raises(QRNNError):
        readout_confusion(1.5)


def test_calibration_at_the_layout_an_evaluation_pins():
    from qrnn_qiskit.backends.noisy import AerExecutor, parse_target
    from qrnn_qiskit.circuits.replay import measured_prefix, measurement_settings

    spec = QRNNSpec(3, layers=1, entangler="cz_chain", readouts="xyz")
    steps = 2
    cal = device_calibration("fake_kingston", spec=spec, steps=steps)
    # the same physical qubits as an aer-noisy evaluation of those templates
    executor = AerExecutor(parse_target("aer-noisy:fake_kingston"), relax_idle=False)
    settings, _ = measurement_settings(spec)
    executor.prepare([measured_prefix(spec, t, s) for t in (1, 2) for s in settings])
    assert cal.layout == executor.layout.initial
    target = fake_backend("fake_kingston").target
    for q in cal.qubits:
        p = q.physical
        assert q.t1 == target.qubit_properties[p].t1 and q.t2 == target.qubit_properties[p].t2
        assert q.sx_error == target["sx"][(p,)].error and q.x_error == target["x"][(p,)].error
        assert q.measure_error == target["measure"][(p,)].error
        assert q.measure_duration == target["measure"][(p,)].duration
        assert q.reset_duration == target["reset"][(p,)].duration > 0
    assert cal.two_qubit_gate == "cz" and len(cal.pairs) == 2  # a chain of 3
    for pair in cal.pairs:
        assert pair.error == target["cz"][pair.physical].error and pair.duration > 0
    window = cal.measure_reset_window()
    assert window == max(q.measure_duration + q.reset_duration for q in cal.qubits)


@pytest.mark.parametrize("backend", ["fake_boston", "fake_pittsburgh"])
def test_heron_r3_backends_work(backend):
    target = fake_backend(backend).target
    cal = device_calibration(backend, layout=[0, 1, 2])
    assert cal.supports_dynamic and cal.two_qubit_gate == "cz"
    assert all(q.t1 and q.t2 and q.sx_error is not None for q in cal.qubits)
    assert cal.measure_reset_window() > 1e-6
    if "measure_2" in target.operation_names:
        assert all(q.measure_2_duration for q in cal.qubits)
        assert cal.measure_reset_window(measure_2=True) <= cal.measure_reset_window()


def test_a_backend_without_dynamic_circuits_has_no_window():
    cal = device_calibration("fake_miami", layout=[0, 1])
    assert not cal.supports_dynamic and cal.qubits[0].reset_duration is None
    with pytest.raises(QRNNError) as error:
        cal.measure_reset_window()
    assert "\n" not in str(error.value) and "fake_miami" in str(error.value)

"""Device noise inside the measured QRNN's exact simulation (``--model mqrnn --train-noise
fake_kingston``): the channels built from a fake backend's calibrations, their numbers, the exact
coupling instrument and the window's relaxation against qiskit / qiskit-aer, the contraction of the
features, training + resume, and the refused forms."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest
import torch
from qiskit.quantum_info import DensityMatrix, Operator, random_density_matrix

from qrnn_qiskit.backends.calibration import device_calibration, thermal_relaxation_kraus
from qrnn_qiskit.backends.targets import fake_backend
from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.circuits.measured import MeasurementSpec, weak_coupling_block
from qrnn_qiskit.models.measured import MeasuredSimulator, StepNoise, apply_channel
from qrnn_qiskit.models.measured_noise import measured_device_noise

C128 = torch.complex128
BACKEND = "fake_kingston"


@cache
def _noise(n: int = 2, qubits: tuple[int, ...] = (0, 1), kind: str = "weak"):
    spec = QRNNSpec(n, layers=1, entangler="cz_chain")
    return spec, measured_device_noise(BACKEND, spec, MeasurementSpec(n, qubits, kind))


def _cptp(channel) -> bool:
    d = 1 << len(channel.qubits)
    return np.allclose(sum(k.conj().T @ k for k in channel.kraus), np.eye(d), atol=1e-12)


def test_fake_kingston_channels_and_their_numbers():
    spec, built = _noise()
    noise, record = built.noise, built.record
    target = fake_backend(BACKEND).target
    data, ancillas = record["layout"]["data"], record["layout"]["ancillas"]
    assert len(data) == 2 and len(ancillas) == 2 and not set(data) & set(ancillas)
    # gate errors: one 1q depolarizing per data qubit, one 2q per entangler pair (cz_chain: 0-1)
    assert [c.qubits for c in noise.after_unitary] == [(0,), (1,), (0, 1)]
    # the window: thermal relaxation of every data qubit (no 1q gates of data in the coupling)
    assert [c.qubits for c in noise.after_measure] == [(0,), (1,)]
    assert all(_cptp(c) for c in (*noise.after_unitary, *noise.after_measure))
    assert noise.confusion.shape == (2, 2, 2) and len(noise.coupling) == 2
    np.testing.assert_allclose(noise.confusion.sum(axis=1), 1.0, atol=1e-15)
    calibration = device_calibration(BACKEND, layout=data + ancillas)
    by_physical = {c.physical: c for c in calibration.qubits}
    # 1q: every native sx on the data qubit composes (p = 2·r each)
    for q in range(2):
        count = record["step"]["native_gates"].get(f"sx[{data[q]}]", 0)
        p = 1 - (1 - 2 * by_physical[data[q]].sx_error) ** count
        assert record["step"]["depolarizing_1q"][str(q)] == pytest.approx(p, rel=1e-12)
        kraus = noise.after_unitary[q].kraus
        assert abs(kraus[0][0, 0]) ** 2 == pytest.approx(1 - 3 * p / 4, rel=1e-12)
    # 2q: the step's CZs on the pair (p = 4/3·r each)
    pair = tuple(sorted(data))
    cz = record["step"]["native_gates"][f"cz[{pair[0]}, {pair[1]}]"]
    error = target["cz"][pair].error if pair in target["cz"] else target["cz"][pair[::-1]].error
    p2 = 1 - (1 - 4 / 3 * error) ** cz
    assert record["step"]["depolarizing_2q"]["0,1"] == pytest.approx(p2, rel=1e-12)
    # the window: coupling + measure_2 (listed on Kingston) + reset of the ancilla
    windows = []
    for r, bit in enumerate(record["bits"]):
        anc = ancillas[r]
        assert bit["readout_physical"] == anc and bit["measure"] == "measure_2"
        measure, reset = target["measure_2"][(anc,)], target["reset"][(anc,)]
        assert bit["measure_s"] == measure.duration and bit["reset_s"] == reset.duration
        assert bit["measure_error"] == measure.error
        assert bit["coupling_2q_gates"] == 2 and noise.coupling[r] == bit["coupling_depolarizing"]
        windows.append(bit["coupling_s"] + measure.duration + reset.duration)
        g = bit["ancilla_1q_depolarizing"] / 2
        flip = measure.error * (1 - g) + g * (1 - measure.error)
        np.testing.assert_allclose(noise.confusion[r], [[1 - flip, flip], [flip, 1 - flip]])
    assert record["window_s"] == pytest.approx(max(windows), rel=1e-12)
    for q in range(2):
        cal = by_physical[data[q]]
        expected = thermal_relaxation_kraus(cal.t1, cal.t2, record["window_s"])
        for ours, theirs in zip(noise.after_measure[q].kraus, expected, strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-15)
    assert json.loads(json.dumps(record)) == record  # JSON-ready


def test_window_relaxation_on_an_idle_qubit_equals_aer():
    from qiskit_aer.noise import thermal_relaxation_error

    spec, built = _noise(2, (0,))  # qubit 1 is never measured: it only idles through the window
    record = built.record
    target = fake_backend(BACKEND).target
    physical = record["layout"]["data"][1]
    props = target.qubit_properties[physical]
    anc = record["layout"]["ancillas"][0]
    op = "measure_2" if "measure_2" in target.operation_names else "measure"
    window = (
        record["bits"][0]["coupling_s"]
        + target[op][(anc,)].duration
        + target["reset"][(anc,)].duration
    )
    (relax,) = [c for c in built.noise.after_measure if c.qubits == (1,)]
    rho = random_density_matrix(4, seed=5)
    ours = apply_channel(torch.tensor(rho.data, dtype=C128), torch.tensor(relax.embedded(2)))
    aer = rho.evolve(thermal_relaxation_error(props.t1, props.t2, window), [1])
    np.testing.assert_allclose(ours.numpy(), aer.data, atol=1e-10, rtol=0)


def test_the_coupling_instrument_equals_a_depolarized_coupling_block():
    """StepNoise.coupling p: a 2q depolarizing channel on (data, ancilla) after the coupling,
    against qiskit's DensityMatrix of the block with the ancilla projected."""
    from qiskit_aer.noise import depolarizing_error

    spec = QRNNSpec(2, layers=1, entangler="cz_chain")
    measurement = MeasurementSpec(2, (1,))
    p, alpha = 0.3, 0.7
    sim = MeasuredSimulator(spec, measurement, C128, StepNoise(coupling=(p,)))
    rho = torch.tensor(random_density_matrix(4, seed=3).data, dtype=C128)[None, None]
    sets = torch.zeros(1, 2, spec.n_params, dtype=torch.float64)
    sigma = sim.evolve(rho, sets)[0].numpy()
    features, blocks = sim.step(
        rho, sets, sim.measurement_map(torch.tensor([alpha], dtype=torch.float64))
    )
    block = weak_coupling_block(alpha)
    state = DensityMatrix(np.kron(np.diag([1.0, 0.0]), sigma))  # qubits 0, 1 data; 2 ancilla
    state = state.evolve(Operator(block), [1, 2]).evolve(depolarizing_error(p, 2), [1, 2])
    expect = 0.0
    for o in (0, 1):
        proj = np.zeros((2, 2))
        proj[o, o] = 1.0
        part = state.evolve(Operator(proj), [2]).data.reshape(2, 4, 2, 4)
        reduced = np.einsum("aibj->ij", part)  # ancilla traced after the projection
        np.testing.assert_allclose(blocks[0, o].numpy(), reduced, atol=1e-12, rtol=0)
        expect += (1 - 2 * o) * np.trace(reduced).real
    assert features[0, 0].item() == pytest.approx(expect, abs=1e-12)


def test_device_noise_contracts_the_exact_features():
    spec, built = _noise()
    measurement = MeasurementSpec(2, (0, 1))
    clean = MeasuredSimulator(spec, measurement, C128)
    noisy = MeasuredSimulator(spec, measurement, C128, built.noise)
    generator = torch.Generator().manual_seed(0)
    sets = torch.rand(4, 12, measurement.angle_sets, spec.n_params, generator=generator) * 6 - 3
    alpha = torch.tensor([0.9, 1.2], dtype=torch.float64)
    f0, rho0 = clean.run(sets.double(), alpha)
    f1, rho1 = noisy.run(sets.double(), alpha)
    # step 0 (nothing relaxed yet): E[(−1)^s_r] shrinks by exactly the product of the factors
    # the channels put on ⟨Z_q⟩: 1q and 2q depolarizing after U, the coupling, the readout flips
    record = built.record
    for r, q in enumerate(measurement.qubits):
        factor = (1 - record["step"]["depolarizing_1q"][str(q)]) * (
            1 - record["step"]["depolarizing_2q"]["0,1"]
        )
        factor *= (1 - built.noise.coupling[r]) * (1 - 2 * record["bits"][r]["bit_flip"])
        np.testing.assert_allclose(f1[:, 0, r].numpy(), factor * f0[:, 0, r].numpy(), rtol=1e-10)
    # later steps: relaxation pushes ⟨Z⟩ towards +1 (not a contraction), but here the features
    # are contracted on average (a deterministic check at these seeds)
    assert f1.abs().mean() < f0.abs().mean()
    assert 0 < (f0 - f1).abs().mean() < 0.2
    trace = torch.diagonal(rho1.sum(1), dim1=-2, dim2=-1).sum(-1).real
    np.testing.assert_allclose(trace.numpy(), 1.0, atol=1e-12)


def _argv(run, steps):
    return ["train", "--task", "copying", "--delay", "2", "--model", "mqrnn", "--qubits", "2",
            "--layers", "1", "--entangler", "cz_chain", "--width", "8", "--batch-size", "4",
            "--eval-size", "8", "--eval-every", "3", "--no-progress", "--threads", "1",
            "--run-dir", str(run), "--steps", str(steps)]  # fmt: skip


def test_train_with_fake_kingston_noise_runs_and_resumes(tmp_path):
    from qrnn_qiskit.cli import main
    from qrnn_qiskit.training import read_metrics

    run = tmp_path / "r"
    assert main([*_argv(run, 3), "--train-noise", BACKEND]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["engine"]["train_noise"] == BACKEND
    first = json.loads((run / "train_noise.json").read_text())
    assert first["backend"] == BACKEND and len(first["relaxation"]) == 2
    assert main([*_argv(run, 5), "--train-noise", BACKEND, "--resume"]) == 0
    assert json.loads((run / "train_noise.json").read_text()) == first
    steps = [record["step"] for record in read_metrics(run) if "accuracy" in record]
    assert steps == [3, 5]


@pytest.mark.parametrize(
    "noise, words",
    [
        ("fake_nowhere", "unknown fake backend"),
        ("fake_miami", "dynamic circuits"),
        ("shots=1000", "fake backend alone"),
        ("lambda=0.99", "fake backend alone"),
        ("fake_kingston:shots=1000", "fake backend alone"),
        ("fake_kingston:foo=1", "unknown --train-noise option"),
    ],
)
def test_bad_train_noise_for_mqrnn_is_one_line_and_writes_nothing(tmp_path, capsys, noise, words):
    from qrnn_qiskit.cli import main

    run = tmp_path / "r"
    assert main([*_argv(run, 1), "--train-noise", noise]) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and words in err, err
    assert not run.exists()


def test_the_coherent_qrnn_keeps_its_train_noise_forms():
    from qrnn_qiskit.training.config import TrainConfig

    for form in ("fake_fez:shots=4000", "shots=2000", "lambda=0.985,shots=4000", "fake_miami"):
        assert TrainConfig.flat(train_noise=form).engine.train_noise == form
    config = TrainConfig.flat(model="mqrnn", qubits=2, train_noise="fake_boston:seed=3")
    assert config.engine.train_noise == "fake_boston:seed=3"


def test_projective_measurement_reads_the_data_qubit():
    _, built = _noise(2, (1,), "projective")
    (bit,) = built.record["bits"]
    assert bit["readout_physical"] == built.record["layout"]["data"][1]
    assert built.noise.coupling == () and built.record["layout"]["ancillas"] == []
    assert math.isclose(built.record["window_s"], bit["measure_s"] + bit["reset_s"])
    spec = QRNNSpec(2, layers=1, entangler="cz_chain")
    sim = MeasuredSimulator(spec, MeasurementSpec(2, (1,), "projective"), C128, built.noise)
    sets = torch.rand(3, 5, 2, spec.n_params, generator=torch.Generator().manual_seed(6)).double()
    features, rho = sim.run(sets, None)
    clean = MeasuredSimulator(spec, MeasurementSpec(2, (1,), "projective"), C128).run(sets, None)
    flip = bit["bit_flip"]
    np.testing.assert_allclose(  # step 0: the gate depolarizing and the readout flip shrink Z_1
        features[:, 0, 0].numpy(),
        (1 - 2 * flip)
        * (1 - built.record["step"]["depolarizing_1q"]["1"])
        * (1 - built.record["step"]["depolarizing_2q"]["0,1"])
        * clean[0][:, 0, 0].numpy(),
        rtol=1e-10,
    )
    trace = torch.diagonal(rho.sum(1), dim1=-2, dim2=-1).sum(-1).real
    np.testing.assert_allclose(trace.numpy(), 1.0, atol=1e-12)


def test_fast_paths_equal_the_embedded_and_general_kraus_paths():
    """Local channels equal their register-wide embedding; the coupled measurement's elementwise
    path equals the general instrument (5 Kraus operators per outcome) path."""
    from qrnn_qiskit.models.measured import apply_local

    spec, built = _noise(3, (0, 2))
    rho = torch.tensor(random_density_matrix(8, seed=1).data, dtype=C128)[None, None]
    for channel in (*built.noise.after_unitary, *built.noise.after_measure):
        local = torch.tensor(np.stack(channel.kraus), dtype=C128)
        embedded = torch.tensor(channel.embedded(3), dtype=C128)
        np.testing.assert_allclose(
            apply_local(rho, local, channel.qubits, 3).numpy(),
            apply_channel(rho, embedded).numpy(),
            atol=1e-14,
        )
    measurement = MeasurementSpec(3, (0, 2))
    sim = MeasuredSimulator(spec, measurement, C128, built.noise)
    generator = torch.Generator().manual_seed(4)
    sets = torch.rand(2, 4, measurement.angle_sets, spec.n_params, generator=generator).double()
    alpha = torch.tensor([0.4, 1.1], dtype=torch.float64)
    fast, general = sim.run(sets, alpha), sim.run(sets, alpha, masks=False)
    for a, b in zip(fast, general, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


def test_a_noisy_run_that_fails_before_its_first_checkpoint_leaves_no_train_noise_json(
    tmp_path, monkeypatch
):
    from qrnn_qiskit.cli import main
    from qrnn_qiskit.errors import QRNNError
    from qrnn_qiskit.training.trainer import Trainer

    run = tmp_path / "r"

    def fail(self):
        assert (run / "train_noise.json").exists()  # written with config.json, then undone
        raise QRNNError("failed at the first batch")

    monkeypatch.setattr(Trainer, "_fit_or_explain", fail)
    assert main([*_argv(run, 1), "--train-noise", BACKEND]) == 2
    assert not run.exists()

"""The loop-gain and scrambling monitor, the feedback-gain penalty and the angle layer's learning
rate (issue 13), each checked against an independent computation."""

from __future__ import annotations

import json

import pytest
import torch

from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.models import QRNNConfig, QRNNCore
from qrnn_qiskit.models.controller import ControllerConfig
from qrnn_qiskit.models.stability import (
    REPORT_KEYS,
    feedback_gain,
    gain_penalty,
    loop_jacobian,
    loop_report,
    random_state_z_abs,
)
from qrnn_qiskit.training import TrainConfig, Trainer, read_metrics
from qrnn_qiskit.training.optim import angle_layers, make_optimizer

TINY = TrainConfig.flat(
    delay=2, qubits=3, layers=1, width=8, steps=6, eval_every=3, eval_size=16, batch_size=4,
    lr=1e-2, progress=False,
)  # fmt: skip


def core(activation="gelu", depth=1, feedback=True, seed=0) -> QRNNCore:
    torch.manual_seed(seed)
    config = QRNNConfig(
        QRNNSpec(3, layers=2),
        ControllerConfig(width=6, depth=depth, activation=activation, init_scale=1.0),
        feedback,
    )
    return QRNNCore(5, config, dtype=torch.complex128).double()


def oracle_jacobian(cell, x_t, z_prev, psi_prev) -> torch.Tensor:
    """∂z_t/∂z_{t-1} of one sample by plain autograd on the torch kernels (the engine's oracle
    path, not the hand-written backward loop_jacobian uses)."""
    engine = cell.engine

    def f(z):
        angles = cell.angles(x_t[None], z[None])
        return engine.readouts_autograd(engine.step_autograd(psi_prev[None], angles))[0]

    return torch.autograd.functional.jacobian(f, z_prev)


@pytest.mark.parametrize("activation,depth", [("gelu", 1), ("tanh", 2), ("glu", 1), ("linear", 0)])
def test_loop_jacobian_matches_plain_autograd(activation, depth):
    cell = core(activation, depth)
    batch = 4
    x = torch.randn(batch, 5, dtype=torch.float64)
    psi, z = cell.initial_state(batch)
    with torch.no_grad():  # a state away from |0…0⟩
        for _ in range(3):
            psi, z = cell.engine.step_readouts(psi, cell.angles(x, z))
    jac = loop_jacobian(cell, x, z, psi)
    assert jac.shape == (batch, cell.n_readouts, cell.n_readouts)
    for b in range(batch):
        torch.testing.assert_close(
            jac[b], oracle_jacobian(cell, x[b], z[b], psi[b]), atol=1e-10, rtol=1e-9
        )


def test_without_feedback_the_loop_is_open():
    cell = core(feedback=False)
    psi, z = cell.initial_state(2)
    assert loop_jacobian(cell, torch.randn(2, 5, dtype=torch.float64), z, psi).abs().max() == 0
    assert feedback_gain(cell) == 0


def test_feedback_gain_is_exact_for_a_linear_controller():
    """depth 0 or linear activations: ∂θ/∂z is the product of the weights, whatever z."""
    for depth, activation in [(0, "gelu"), (2, "linear")]:
        cell = core(activation, depth)
        z = torch.randn(cell.n_readouts, dtype=torch.float64)
        x = torch.randn(5, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(
            lambda z, cell=cell, x=x: cell.angles(x[None], z[None])[0], z
        )
        torch.testing.assert_close(feedback_gain(cell), jac.pow(2).sum(), atol=1e-12, rtol=1e-10)


def test_loop_report_of_a_tiny_model_and_the_scrambled_level():
    model = Trainer.from_config(TINY, None).model
    x = torch.randint(0, 10, (8, 12))
    report = loop_report(model, x, n_times=4)
    assert set(report) == set(REPORT_KEYS)
    assert 0 < report["gain_median"] <= report["gain_max"] <= report["gain_peak"]
    assert 0 < report["z_abs_last"] <= 1 and report["angle_abs"] > 0
    # the report's gain is the batch mean of σ_max at the steps it measured (here the last)
    last = loop_report(model, x, n_times=1)
    assert last["gain_median"] == last["gain_max"]
    assert model.training  # left in the mode it was in
    haar = torch.randn(4096, 2**6, dtype=torch.complex128)
    haar = haar / haar.norm(dim=1, keepdim=True)
    z_first = (haar.abs() ** 2 * torch.tensor([1.0, -1.0]).repeat(2**5)).sum(1).abs().mean()
    assert random_state_z_abs(6) == pytest.approx(float(z_first), rel=0.05)


def test_every_evaluation_logs_the_monitor_and_it_leaves_training_unchanged(tmp_path):
    on = Trainer.from_config(TINY, tmp_path / "on")
    on.fit()
    off = Trainer.from_config(TINY.replace(monitor=False), tmp_path / "off")
    off.fit()
    records_on, records_off = read_metrics(tmp_path / "on"), read_metrics(tmp_path / "off")
    assert [r["step"] for r in records_on] == [3, 6]
    assert all(set(REPORT_KEYS) <= set(r) for r in records_on)
    assert not any(set(REPORT_KEYS) & set(r) for r in records_off)
    for a, b in zip(on.model.parameters(), off.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the monitor draws nothing from the training's random stream


def test_baselines_log_no_monitor(tmp_path):
    Trainer.from_config(TINY.replace(model="lstm"), tmp_path / "lstm").fit()
    assert not any(set(REPORT_KEYS) & set(r) for r in read_metrics(tmp_path / "lstm"))


def test_angle_lr_puts_the_angle_layers_in_a_slower_group_and_the_schedule_keeps_it():
    config = TINY.replace(angle_lr=0.1, schedule="linear")
    trainer = Trainer.from_config(config, None)
    rest, angle = trainer.optimizer.param_groups
    layer = angle_layers(trainer.model)
    assert len(layer) == 1 and [id(p) for p in angle["params"]] == [
        id(p) for p in layer[0].parameters()
    ]
    assert len(rest["params"]) + len(angle["params"]) == len(list(trainer.model.parameters()))
    trainer.fit()
    lr = trainer.optimizer.param_groups[0]["lr"]
    assert trainer.optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * lr)
    # 1 (and models without a QRNN controller): one group, as before the option existed
    single = TINY.replace(angle_lr=1.0)
    one = make_optimizer(Trainer.from_config(single, None).model, single.optim)
    assert len(one.param_groups) == 1
    lstm = Trainer.from_config(config.replace(model="lstm"), None)
    assert len(lstm.optimizer.param_groups) == 1


def test_gain_penalty_lowers_the_feedback_gain_it_penalises(tmp_path):
    base = TINY.replace(steps=30, eval_every=30, lr=3e-2, init_scale=1.0)
    gains = {}
    for weight in (0.0, 10.0):
        trainer = Trainer.from_config(base.replace(gain_penalty=weight), None)
        trainer.fit()
        gains[weight] = float(gain_penalty(trainer.model))
    assert gains[10.0] < 0.5 * gains[0.0]


def test_a_config_written_before_angle_lr_existed_keeps_one_learning_rate(tmp_path):
    Trainer.from_config(TINY.replace(angle_lr=0.25), tmp_path / "r").fit()
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert stored["config"]["optim"]["angle_lr"] == 0.25
    del stored["config"]["optim"]["angle_lr"]
    assert TrainConfig.from_dict(stored["config"]).optim.angle_lr == 1.0
    flat = TINY.flat_dict()
    del flat["angle_lr"]
    assert TrainConfig.from_dict(flat).optim.angle_lr == 1.0


def test_the_default_init_scale_follows_the_sequence_length():
    from qrnn_qiskit.models.controller import init_scale_for_length
    from qrnn_qiskit.training.tasks import make_task
    from qrnn_qiskit.training.tasks.base import qrnn_config

    assert [init_scale_for_length(t) for t in (None, 25, 32)] == [1.0, 1.0, 1.0]
    assert init_scale_for_length(33) == init_scale_for_length(200) == 0.1
    assert init_scale_for_length(800) == pytest.approx(0.05)
    for delay, scale in ((5, 1.0), (40, 0.1)):  # copying: T = delay + 20
        config = TINY.replace(delay=delay)
        assert config.qrnn.controller.init_scale is None
        assert qrnn_config(config, make_task(config)).controller.init_scale == scale
    given = TINY.replace(delay=40, init_scale=0.5)
    assert qrnn_config(given, make_task(given)).controller.init_scale == 0.5
    # the scale is the one the built model starts from
    torch.manual_seed(0)
    small = Trainer.from_config(TINY.replace(delay=40), None).model.core.controller.out.weight
    torch.manual_seed(0)
    one = Trainer.from_config(TINY.replace(delay=40, init_scale=1.0), None).model.core
    torch.testing.assert_close(small, 0.1 * one.controller.out.weight)


def test_resume_with_the_original_flags_keeps_a_changed_default(tmp_path, monkeypatch):
    """A run written when --angle-lr and --init-scale defaulted to 1 resumes with 1 from its
    original command line; a flag given on the resume still wins (and must match)."""
    from qrnn_qiskit.cli import main

    run = tmp_path / "r"
    argv = ["train", "--delay", "2", "--qubits", "3", "--layers", "1", "--width", "8",
            "--batch-size", "4", "--eval-size", "16", "--eval-every", "3", "--no-progress",
            "--run-dir", str(run)]  # fmt: skip
    assert main([*argv, "--steps", "3", "--angle-lr", "1", "--init-scale", "1"]) == 0
    assert main([*argv, "--steps", "6", "--resume"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["optim"]["angle_lr"] == 1.0 and config["qrnn"]["controller"]["init_scale"] == 1.0
    assert main([*argv, "--steps", "9", "--resume", "--angle-lr", "0.5"]) == 2
    assert main([*argv, "--steps", "9", "--resume", "--angle-l", "0.5"]) == 2  # argparse's prefix

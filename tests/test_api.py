"""The flat Python API, ``qrnn_qiskit.QRNN``: the trainer's model and learning rates, a plain
training loop, the engines, and one-line errors for bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qrnn_qiskit import QRNN, QRNNError, param_groups
from qrnn_qiskit.models import QRNNCore
from qrnn_qiskit.models.controller import init_scale_for_length
from qrnn_qiskit.training import TrainConfig, Trainer
from qrnn_qiskit.training.config import ANGLE_LR_DEFAULT
from qrnn_qiskit.training.tasks.base import qrnn_config

ROOT = Path(__file__).resolve().parents[1]


def _trainer(delay: int = 13) -> Trainer:
    # delay 13: copying sequences of 33 steps, past the init-scale rule's first threshold
    config = TrainConfig.flat(
        task="copying", delay=delay, qubits=3, layers=1, entangler="cz_chain", width=8,
        embed_dim=5, lr=2e-2, steps=2, batch_size=2, eval_size=2, progress=False, seed=7,
    )  # fmt: skip
    return Trainer.from_config(config, run_dir=None)


def test_import_qrnn_qiskit_loads_neither_torch_nor_qiskit():
    code = (
        "import sys, qrnn_qiskit; "
        "assert not {'torch', 'qiskit'} & set(sys.modules), sorted(sys.modules); "
        "assert 'QRNN' in dir(qrnn_qiskit)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_qrnn_is_the_trainers_core_with_its_init_scale():
    trainer = _trainer()
    core = trainer.model.core
    horizon = trainer.task.horizon
    assert horizon == 33 and core.config.controller.init_scale == init_scale_for_length(33) == 0.1
    qrnn = QRNN(5, 3, layers=1, entangler="cz_chain", horizon=horizon, width=8)
    assert qrnn.config == core.config
    # the same seed gives the same weights as the trainer's own QRNNCore construction
    torch.manual_seed(3)
    qrnn = QRNN(5, 3, layers=1, entangler="cz_chain", horizon=horizon, width=8)
    torch.manual_seed(3)
    reference = QRNNCore(5, qrnn_config(trainer.config, trainer.task))
    ours, theirs = qrnn.state_dict(), reference.state_dict()
    assert [k.removeprefix("core.") for k in ours] == list(theirs)
    assert all(torch.equal(ours[f"core.{k}"], v) for k, v in theirs.items())
    # and, given the trained model's weights, the same outputs and final state
    qrnn.core.load_state_dict(core.state_dict())
    x, _ = trainer.task.train_batch(0)
    with torch.no_grad():
        features = trainer.model.embed(x)
        expected, (psi_ref, z_ref) = core(features)
        output, (psi, z) = qrnn(features)
    assert output.shape == (2, 33, 9)
    torch.testing.assert_close(output, expected, rtol=0, atol=0)
    torch.testing.assert_close(psi, psi_ref, rtol=0, atol=0)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=0)


def test_param_groups_give_the_trainers_learning_rates():
    trainer = _trainer()
    lr = trainer.config.optim.lr
    expected = [(g["lr"], [p.shape for p in g["params"]]) for g in trainer.optimizer.param_groups]
    # the trainer's groups over its whole model (embedding, QRNN, head)
    groups = torch.optim.Adam(param_groups(trainer.model, lr)).param_groups
    assert [(g["lr"], [p.shape for p in g["params"]]) for g in groups] == expected
    assert [g["lr"] for g in groups] == [lr, lr * ANGLE_LR_DEFAULT] and ANGLE_LR_DEFAULT == 0.03
    # a bare QRNN: its angle layer at 0.03 ×, the rest at lr; plain Adam accepts the groups
    qrnn = QRNN(5, 3, layers=1, horizon=33, width=8)
    optimizer = torch.optim.Adam(qrnn.param_groups(1e-2))
    angle = {id(p) for p in qrnn.core.controller.out.parameters()}
    for group in optimizer.param_groups:
        is_angle = {id(p) in angle for p in group["params"]}
        assert is_angle in ({True}, {False})
        assert group["lr"] == pytest.approx(1e-2 * (ANGLE_LR_DEFAULT if True in is_angle else 1))
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(qrnn.parameters()))
    assert len(qrnn.param_groups(1e-2, angle_lr=1.0)) == 1


def test_trains_in_a_plain_torch_loop():
    # remember the sign of the first input across 5 steps
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, 2, generator=gen)
    y = (x[:, 0, 0] > 0).float()
    torch.manual_seed(0)
    qrnn = QRNN(2, 2, layers=1, horizon=6, width=16)
    head = torch.nn.Linear(qrnn.output_size, 1)
    optimizer = torch.optim.Adam(qrnn.param_groups(3e-2) + [{"params": head.parameters()}], lr=3e-2)
    losses = []
    for _ in range(25):
        z, _ = qrnn(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(z[:, -1]).squeeze(-1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_time_major_inputs_and_continuing_a_sequence():
    torch.manual_seed(1)
    qrnn = QRNN(3, 2, horizon=8, width=8)
    x = torch.randn(4, 8, 3)
    with torch.no_grad():
        whole, (psi, z) = qrnn(x)
        first, state = qrnn(x[:, :5])
        rest, (psi2, z2) = qrnn(x[:, 5:], state)
        qrnn.batch_first = False
        time_major, _ = qrnn(x.transpose(0, 1))
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)
    torch.testing.assert_close(psi2, psi)
    torch.testing.assert_close(time_major.transpose(0, 1), whole)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 0, "n_qubits": 2}, "input_size must be an integer >= 1"),
        ({"input_size": -3, "n_qubits": 2}, "input_size must be an integer >= 1"),
        ({"input_size": 2.5, "n_qubits": 2}, "input_size must be an integer >= 1"),
        ({"input_size": 2, "n_qubits": 0}, "n_qubits must be an integer in 1..24"),
        ({"input_size": 2, "n_qubits": 25}, "n_qubits must be an integer in 1..24"),
        ({"input_size": 2, "n_qubits": 2, "layers": 0}, "layers must be an integer >= 1"),
        ({"input_size": 2, "n_qubits": 2, "entangler": "swap"}, "entangler must be one of"),
        ({"input_size": 2, "n_qubits": 2, "horizon": 0}, "horizon must be an integer >= 1"),
        ({"input_size": 2, "n_qubits": 2, "engine": "gpu"}, "engine must be one of"),
        ({"input_size": 2, "n_qubits": 2, "engine": "noisy:lambda=2"}, "lambda must be in"),
        ({"input_size": 2, "n_qubits": 2, "dtype": torch.float32}, "dtype must be"),
    ],
)
def test_bad_constructor_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(QRNNError, match=message) as error:
        QRNN(**kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.randn(4, 3), r"must be \[batch, time, 3\], got shape \(4, 3\)"),
        (torch.randn(2, 4, 5), r"must be \[batch, time, 3\], got shape \(2, 4, 5\)"),
        (torch.randn(2, 0, 3), "at least one sequence and one step"),
        (torch.zeros(2, 4, 3, dtype=torch.long), "must be a floating-point tensor"),
        (torch.randn(2, 4, 3, dtype=torch.float64), "parameters are torch.float32"),
        ([[[0.0, 0.0, 0.0]]], "must be a torch.Tensor"),
    ],
)
def test_bad_inputs_are_one_line_errors(x, message):
    qrnn = QRNN(3, 2, width=4)
    with pytest.raises(QRNNError, match=message) as error:
        qrnn(x)
    assert "\n" not in str(error.value)


def test_a_state_of_another_batch_is_a_one_line_error():
    qrnn = QRNN(3, 2, width=4)
    _, state = qrnn(torch.randn(2, 3, 3))
    with pytest.raises(QRNNError, match="state is for batch 2 but the input has batch 5"):
        qrnn(torch.randn(5, 3, 3), state)


def _same_weights(reference: QRNN, **kwargs) -> QRNN:
    other = QRNN(3, 2, layers=1, width=4, **kwargs)
    other.load_state_dict(reference.state_dict())
    return other


def test_noisy_engine_shrinks_the_readouts_as_the_train_noise_wrapper():
    from qrnn_qiskit.models.noise import NoisyReadoutEngine

    torch.manual_seed(2)
    x = torch.randn(2, 4, 3)
    # without feedback the controller's angles do not depend on the readouts: z̃_t = 0.9^t · z_t
    exact = QRNN(3, 2, layers=1, width=4, feedback=False)
    noisy = QRNN(3, 2, layers=1, width=4, feedback=False, engine="noisy:lambda=0.9")
    noisy.load_state_dict(exact.state_dict())
    assert isinstance(noisy.engine, NoisyReadoutEngine)
    lam = 0.9 ** torch.arange(1, 5, dtype=torch.float32)
    torch.testing.assert_close(noisy(x)[0], lam[:, None] * exact(x)[0])
    # with feedback the controller reads the shrunk readouts, and trains through them
    torch.manual_seed(2)
    exact = QRNN(3, 2, layers=1, width=4)
    noisy = _same_weights(exact, engine="noisy:lambda=0.9,shots=1000")
    z_noisy, _ = noisy(x)
    assert z_noisy.shape == (2, 4, 6) and not torch.allclose(z_noisy, exact(x)[0], atol=1e-3)
    z_noisy.sum().backward()
    assert noisy.core.controller.out.weight.grad.abs().sum() > 0


def test_aer_engine_matches_the_statevector_engine():
    pytest.importorskip("qiskit_machine_learning")
    from qrnn_qiskit.backends.aer import AerEstimatorEngine

    torch.manual_seed(4)
    statevector = QRNN(3, 2, layers=1, width=4, dtype=torch.complex128)
    aer = _same_weights(statevector, engine="aer")
    assert isinstance(aer.engine, AerEstimatorEngine)
    x = torch.randn(1, 3, 3)
    expected, _ = statevector(x)
    output, _ = aer(x)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)
    output.sum().backward()
    assert aer.core.controller.out.weight.grad.abs().sum() > 0


def test_an_engine_object_and_replay_on_the_exact_target():
    from qrnn_qiskit.models import default_engine

    torch.manual_seed(5)
    qrnn = QRNN(3, 2, layers=1, width=4)
    same = _same_weights(qrnn, engine=default_engine(qrnn.spec, torch.complex128))
    x = torch.randn(2, 3, 3)
    with torch.no_grad():
        expected, _ = qrnn(x)
        torch.testing.assert_close(same(x)[0], expected, atol=1e-5, rtol=0)
    replayed = qrnn.replay(x, target="exact", shots=1)
    assert replayed.shape == expected.shape
    torch.testing.assert_close(replayed, expected, atol=1e-5, rtol=0)
    with pytest.raises(QRNNError, match="engine has 4 parameters, the spec needs 8"):
        QRNN(3, 2, layers=2, engine=default_engine(qrnn.spec))


def test_the_api_page_samples_run():
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), {})

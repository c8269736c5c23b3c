import pytest
import torch

from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.models import (
    ACTIVATIONS,
    ControllerConfig,
    InputSpec,
    QRNNConfig,
    build_model,
    count_parameters,
    match_hidden_size,
)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_qrnn_shapes_and_gradients_reach_every_parameter(activation):
    config = QRNNConfig(
        QRNNSpec(3, 2), ControllerConfig(width=8, depth=2, activation=activation, dropout=0.1)
    )
    model = build_model("qrnn", InputSpec(vocab=5, embed_dim=4), 7, "all", qrnn=config)
    x = torch.randint(0, 5, (2, 6))
    out = model(x)
    assert out.shape == (2, 6, 7)
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_real_inputs_last_head_and_padding_lengths():
    config = QRNNConfig(QRNNSpec(2, 1, readouts="z"), ControllerConfig(width=4, angle_map="tanh"))
    model = build_model("qrnn", InputSpec(features=3, embed_dim=4), 2, "last", qrnn=config).eval()
    x = torch.randn(2, 5, 3)
    full = model(x)
    assert full.shape == (2, 2)
    lengths = torch.tensor([5, 3])
    padded = model(x, lengths)
    torch.testing.assert_close(padded[0], full[0])
    torch.testing.assert_close(padded[1], model(x[1:2, :3])[0])


def test_feedback_off_changes_controller_input_size():
    on = QRNNConfig(QRNNSpec(2, 1), ControllerConfig(width=4))
    off = QRNNConfig(QRNNSpec(2, 1), ControllerConfig(width=4), feedback=False)
    inputs = InputSpec(vocab=3, embed_dim=4)
    diff = count_parameters(build_model("qrnn", inputs, 2, qrnn=on)) - count_parameters(
        build_model("qrnn", inputs, 2, qrnn=off)
    )
    assert diff == 4 * 6  # 6 readouts × width 4


def test_tanh_angle_map_bounds_angles():
    config = QRNNConfig(
        QRNNSpec(2, 1), ControllerConfig(width=4, angle_map="tanh", init_scale=50.0)
    )
    model = build_model("qrnn", InputSpec(vocab=3, embed_dim=4), 2, qrnn=config)
    angles = model.core.angles(torch.randn(8, 4), torch.randn(8, 6))
    assert angles.abs().max() <= torch.pi


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_baselines_match_parameter_count(kind):
    inputs = InputSpec(vocab=10, embed_dim=16)
    target = count_parameters(
        build_model("qrnn", inputs, 9, qrnn=QRNNConfig(QRNNSpec(6, 2), ControllerConfig(width=64)))
    )
    hidden = match_hidden_size(lambda h: build_model(kind, inputs, 9, hidden_size=h), target)
    count = count_parameters(build_model(kind, inputs, 9, hidden_size=hidden))
    step = count_parameters(build_model(kind, inputs, 9, hidden_size=hidden + 1)) - count
    assert abs(count - target) <= step
    out = build_model(kind, inputs, 9, hidden_size=hidden)(torch.randint(0, 10, (2, 4)))
    assert out.shape == (2, 4, 9)


@pytest.mark.parametrize(
    "bad", [dict(activation="swish"), dict(angle_map="sigmoid"), dict(dropout=1.0), dict(width=0)]
)
def test_bad_controller_config(bad):
    with pytest.raises(ValueError):
        ControllerConfig(**bad)


def test_bad_inputs_are_rejected():
    model = build_model("qrnn", InputSpec(vocab=3, embed_dim=4), 2, qrnn=QRNNConfig(QRNNSpec(2, 1)))
    with pytest.raises(ValueError, match="token inputs"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("transformer", InputSpec(vocab=3), 2)


def test_apply_head_reads_the_last_real_step_of_padded_token_inputs():
    config = QRNNConfig(QRNNSpec(2, 1, readouts="z"), ControllerConfig(width=4))
    model = build_model(
        "qrnn", InputSpec(vocab=5, embed_dim=4, pad_id=0), 3, "last", qrnn=config
    ).eval()
    x = torch.tensor([[3, 4, 2, 0, 0], [1, 2, 3, 4, 1]])
    hidden, _ = model.core(model.embed(x))
    torch.testing.assert_close(model.apply_head(hidden, x), model(x))
    torch.testing.assert_close(model.apply_head(hidden, x)[0], model.head(hidden[0, 2]))

"""``--device cuda`` (training/devices.py): the statevector engine's torch kernels on the GPU with
the controller on the CPU train the same model as the CPU engine. Skipped cleanly without a CUDA
device (the engine's own CUDA conformance runs in tests/engines as the ``cuda`` kind)."""

import pytest
import torch

from qrnn_qiskit.training import TrainConfig, Trainer
from qrnn_qiskit.training.devices import DeviceEngine

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY = TrainConfig.flat(
    delay=2, qubits=4, layers=1, width=8, steps=4, eval_every=2, eval_size=16, batch_size=4,
    lr=1e-2, progress=False, dtype="complex128",
)  # fmt: skip


def test_the_device_bridge_is_transparent_on_the_cpu():
    """The adapter alone (engine and host both the CPU): the QRNN trained through it is the
    QRNN trained without it, bit for bit."""
    from qrnn_qiskit.models import InputSpec, build_model
    from qrnn_qiskit.models.qrnn import default_engine

    spec = TINY.qrnn.spec
    x = torch.randn(4, 5, 1)

    def trained(engine):
        torch.manual_seed(0)
        model = build_model("qrnn", InputSpec(features=1, embed_dim=4), 3, "all", qrnn=TINY.qrnn,
                            dtype=torch.complex128, engine=engine)  # fmt: skip
        # the adapter is not the plain engine, so it runs step by step: compare it with that
        # (tests/test_fused.py compares the fused pass with the step-by-step one)
        model.core.fused = False
        model(x).square().mean().backward()
        return model(x), [p.grad for p in model.parameters()]

    plain = trained(default_engine(spec, torch.complex128))
    bridged = trained(DeviceEngine(default_engine(spec, torch.complex128)))
    torch.testing.assert_close(plain[0], bridged[0], rtol=0, atol=0)
    for a, b in zip(plain[1], bridged[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.gpu
@needs_cuda
def test_training_with_the_engine_on_cuda_matches_the_cpu_engine(tmp_path):
    cpu = Trainer.from_config(TINY, tmp_path / "cpu")
    gpu = Trainer.from_config(TINY.replace(device="cuda"), tmp_path / "gpu")
    assert isinstance(gpu.model.core.engine, DeviceEngine)
    a, b = cpu.fit(), gpu.fit()
    assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-6)
    for (name, p), q in zip(cpu.model.state_dict().items(), gpu.model.state_dict().values()):
        assert q.device.type == "cpu"
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8, msg=name)

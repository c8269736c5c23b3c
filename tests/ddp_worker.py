"""One rank of the data-parallel test (tests/test_distributed.py), started by torchrun in a fresh
interpreter: ``torchrun --nproc-per-node 2 tests/ddp_worker.py OUT``.

It trains the tiny copying run of the test for 3 steps through ``qrnn train`` (rank 0 writes
OUT/run), resumes it to 6 steps through the Python API, and saves this rank's final parameters to
OUT/rank<R>.pt so the test can check that the ranks stayed in lockstep.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from qrnn_qiskit.cli import main
from qrnn_qiskit.training import TrainConfig, Trainer
from qrnn_qiskit.training.distributed import launch

ARGS = dict(delay=2, qubits=3, layers=1, width=8, eval_every=3, eval_size=16, batch_size=4)
ARGS |= dict(lr=1e-2, progress=False, threads=1)


def flags(**options) -> list[str]:
    out = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        out += (
            [flag if value else "--no-" + flag[2:]]
            if isinstance(value, bool)
            else [flag, str(value)]
        )
    return out


if __name__ == "__main__":
    out = Path(sys.argv[1])
    config = TrainConfig.flat(**ARGS, steps=6)
    with launch(config) as world:  # joins the group; qrnn train below reuses it
        assert dist.is_initialized() and world.world_size == 2
        code = main(["train", *flags(**ARGS, steps=3), "--run-dir", str(out / "run")])
        assert code == 0, code
        trainer = Trainer.from_config(config, out / "run", resume=True, world=world)
        assert trainer.step == 3
        result = trainer.fit()
        assert result.steps == 6
        torch.save(trainer.model.state_dict(), out / f"rank{world.rank}.pt")

"""Train a QRNN through the noise-aware engine wrapper (models/noise.py) with the existing API.

    python experiments/train_noise_aware.py RUN_DIR --noise fake_fez:shots=4000 --minutes 6 \
        --delay 1 --qubits 4 --layers 2 --entangler cz_chain --width 64 --lr 1e-2

Builds TrainConfig and Trainer as `qrnn train` would, swaps the model core's engine for a
NoisyReadoutEngine calibrated on the named fake backend, and trains. The checkpoint is an ordinary
QRNN checkpoint (the wrapper has no parameters); RUN_DIR/train_noise.json records the spec and λ.
Until the trainer has a --train-noise flag this script is how noise-aware runs are made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument(
        "--noise", required=True, help="--train-noise spec, e.g. fake_fez:shots=4000"
    )
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--delay", type=int, default=1)
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--entangler", default="cz_chain")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000, help="optimizer steps (a cap)")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from qrnn_qiskit.data.copying import copying_length
    from qrnn_qiskit.fileio import atomic_write_json
    from qrnn_qiskit.models.noise import noisy_engine, parse_train_noise
    from qrnn_qiskit.training import TrainConfig, Trainer

    noise = parse_train_noise(args.noise)
    config = TrainConfig.flat(
        task="copying",
        model="qrnn",
        delay=args.delay,
        qubits=args.qubits,
        layers=args.layers,
        entangler=args.entangler,
        width=args.width,
        lr=args.lr,
        batch_size=args.batch_size,
        steps=args.steps,
        max_minutes=args.minutes,
        eval_every=100,
        eval_size=512,
        threads=1,
        progress=False,
        seed=args.seed,
    )
    trainer = Trainer.from_config(
        config,
        args.run_dir,
        resume=args.resume,
        argv=["experiments/train_noise_aware.py", args.noise],
    )
    core = trainer.model.core
    steps = copying_length(args.delay)
    core.engine = noisy_engine(core.engine, config.qrnn.spec, noise, steps)
    atomic_write_json(
        Path(args.run_dir) / "train_noise.json",
        {
            "spec": args.noise,
            "noise": noise.to_dict(),
            "shrink": core.engine.shrink.tolist() if core.engine.shrink is not None else None,
        },
    )
    print(core.engine)
    result = trainer.fit()
    print(result.summary)


if __name__ == "__main__":
    main()

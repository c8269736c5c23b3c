"""``qrnn export``: the bound circuits of one input sequence in replay or dynamic form, as QPY or
OpenQASM 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import QRNNError
from ..fileio import atomic_write_bytes, make_folder
from ..training import load_run, make_task
from .protocols import DynamicProtocol, ReplayProtocol

FORMATS = ("qpy", "qasm3")


def parse_input(text: str, run_dir: str | Path) -> torch.Tensor:
    """``eval:I`` (sequence I of the task's evaluation set) or comma-separated tokens → inputs [1,
    T]."""
    config, model, _ = load_run(run_dir)
    text = text.strip()
    if text.startswith("eval:"):
        try:
            index = int(text[5:])
        except ValueError:
            raise QRNNError(f"--input {text!r}: write eval:<index>, e.g. eval:0") from None
        if index < 0:
            raise QRNNError(f"--input {text!r}: the index counts from 0 (eval:0 is the first)")
        seen = 0
        for x, _ in make_task(config).eval_batches():
            if index < seen + len(x):
                return x[index - seen : index - seen + 1]
            seen += len(x)
        raise QRNNError(f"--input {text!r}: the evaluation set has {seen} sequences")
    vocab = getattr(model.inputs, "vocab", 0)
    if not vocab:
        raise QRNNError("this task has real-valued inputs; choose one with --input eval:<index>")
    try:
        tokens = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise QRNNError(
            f"--input {text!r}: write comma-separated token ids or eval:<index>"
        ) from None
    if not tokens or min(tokens) < 0 or max(tokens) >= vocab:
        raise QRNNError(f"--input tokens must be ids in 0..{vocab - 1}")
    return torch.tensor([tokens], dtype=torch.long)


def export_circuits(
    run_dir: str | Path,
    x: torch.Tensor,
    protocol: str,
    fmt: str,
    out: str | Path,
    coupling: str = "cnot",
    corrections: int = -1,
) -> list[Path]:
    """Write the bound circuits (replay: the noiseless trajectory's prefixes) and return the written
    paths."""
    if fmt not in FORMATS:
        raise QRNNError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    _, model, _ = load_run(run_dir)
    model.eval()
    if protocol == "replay":
        replay = ReplayProtocol(model, x)
        z_exact = replay.exact.to(replay.features.dtype)
        circuits = []
        for r in range(replay.steps):
            for index, values in replay.round_pubs(r):
                circuits.append(replay.templates[index].assign_parameters(np.asarray(values)[0]))
            replay.absorb_exact(z_exact[:, r])
    elif protocol == "dynamic":
        circuits = DynamicProtocol(model, x, coupling, corrections).templates
    else:
        raise QRNNError(f"unknown protocol {protocol!r}; choose replay or dynamic")
    out = make_folder(Path(out), "folder for --out")
    if fmt == "qpy":
        import io

        from qiskit import qpy

        path = out / f"{protocol}.qpy"
        buffer = io.BytesIO()
        qpy.dump(circuits, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return [path]
    from qiskit import qasm3

    paths = []
    for i, circuit in enumerate(circuits):
        path = out / f"{protocol}_{i:04d}_{circuit.name}.qasm"
        atomic_write_bytes(path, qasm3.dumps(circuit).encode())
        paths.append(path)
    return paths

"""Peer benchmark: the QRNN step circuit on the package's engine, PennyLane lightning.qubit and
tensorcircuit-ng.

    make bench-peers                                         # installs .venv-peers, then the full
    grid .venv-peers/bin/python benchmarks/peers.py --qubits 4 8 12 --batch 32
    .venv-peers/bin/python benchmarks/peers.py --qubits 4 8 --batch 32 --repeats 3 --threads 1

The peers are optional: they live in ``.venv-peers`` (``pip install -e ".[peers]"``), never in the
package's dependencies. Workload (as in benchmarks/engine.py): ``step_circuit(QRNNSpec(n, L,
"cx_ring", "xyz"))``, a batch of B per-sample angle vectors (ordered as ``circuit.parameters``), 3n
readouts ⟨X_q⟩, ⟨Y_q⟩, ⟨Z_q⟩, single precision (complex64 states) everywhere. Measurements, each for
the whole batch:

* ``step fwd``: one step from |0…0⟩, the state after the circuit and the 3n readouts;
* ``step fwd+bwd``: the readouts and the gradient of their sum w.r.t. all B×P angles;
* ``T=28 fwd+bwd``: 28 steps with the state carried (ψ_t = U(θ_t) ψ_{t-1}), loss = sum of all
  readouts of all steps, gradient w.r.t. all B×T×P angles.

How each peer runs it:

* ``qrnn``: ``StatevectorEngine`` (complex64, default kernel: native C on the CPU), as
  benchmarks/engine.py.
* ``pennylane``: lightning.qubit (``c_dtype=complex64``), torch interface, ``diff_method="adjoint"``
  with ``device_vjp=True`` (one adjoint pass per tape for the summed cotangent instead of a 3n-row
  Jacobian). The batch is passed by parameter broadcasting; lightning.qubit's preprocessing expands
  it into B tapes. The adjoint method cannot differentiate a state fed into a circuit, so ``T=28``
  runs 28 prefix circuits U(θ_t)…U(θ_1)|0…0⟩ (t = 1…28, 406 step applications per sample instead of
  28), each read out at its end: the same readouts and loss as the carried state. ``step fwd``
  returns ``qml.state()`` with the expectations.
* ``tensorcircuit``: tensorcircuit-ng, jax backend, ``tc.set_dtype("complex64")``; a step is a
  ``tc.Circuit`` with ``inputs=state``, readouts via ``expectation_ps`` on the output state;
  ``jax.jit(jax.vmap(...))`` over the batch, ``jax.value_and_grad`` for gradients, ``jax.lax.scan``
  over the 28 steps. Compile time (``lower`` + ``compile``) is excluded from the timings and
  reported once per measurement.

Before timing, ``--check`` (on unless ``--no-check``) compares every peer at n=4 and n=8, B=3,
against the engine in complex128: states (in Qiskit's qubit order), readouts, step gradients, and
T=28 readouts and gradients. A peer whose largest difference exceeds ``--atol`` × max(1, largest
reference value) is not timed. Each (peer, n, B) runs in a fresh subprocess pinned to ``--threads``
cores (CPU affinity, OMP/torch threads). Figures: median and range of wall-clock time over
``--repeats`` runs after one warm-up; a run whose warm-up alone exceeds ``--max-seconds`` is
reported from that single run, and a T=28 measurement estimated (from the step fwd+bwd median) to
exceed ``--max-run-seconds`` a run is skipped. Results: benchmarks/results/peers-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from grid import (
    add_grid_arguments,
    spawn,
)  # benchmarks/grid.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEERS = ("qrnn", "pennylane", "tensorcircuit")
MEASUREMENTS = ("step fwd", "step fwd+bwd", "seq fwd+bwd")  # "seq" is printed as T=<seq_len>
Gate = tuple[str, tuple[int, ...], int | None]


def _gates(circuit: Any) -> list[Gate]:
    """(name, qubits, angle index into ``circuit.parameters`` or None) of every gate, in circuit
    order."""
    index = {p: i for i, p in enumerate(circuit.parameters)}
    gates = []
    for ins in circuit.data:
        name, qubits = ins.operation.name, tuple(circuit.find_bit(q).index for q in ins.qubits)
        if name in ("ry", "rz"):
            (angle,) = ins.operation.params
            if angle not in index:
                raise ValueError(f"{name} angle {angle} is not a bare circuit parameter")
            gates.append((name, qubits, index[angle]))
        elif name == "cx":
            gates.append((name, qubits, None))
        elif name != "barrier":
            raise ValueError(f"the peers here implement ry, rz and cx only, not {name}")
    return gates


def _to_qiskit_order(state: np.ndarray, n: int) -> np.ndarray:
    """[B, 2**n] amplitudes with qubit 0 as the most significant bit (PennyLane, tensorcircuit) →
    Qiskit order."""
    batch = state.shape[0]
    return state.reshape(batch, *[2] * n).transpose(0, *range(n, 0, -1)).reshape(batch, 1 << n)


class QRNNRunner:
    """The package's engine, complex64, as timed by benchmarks/engine.py."""

    precision = "complex64"
    batching = "native batch dimension"
    qiskit_order = True
    prefix_sequences = False

    def __init__(self, spec: Any, circuit: Any, dtype: Any = None) -> None:
        import torch

        from qrnn_qiskit.backends import StatevectorEngine
        from qrnn_qiskit.circuits import readout_observables

        self.torch = torch
        self.engine = StatevectorEngine(
            circuit, readout_observables(spec), dtype=dtype or torch.complex64
        )
        self.precision = str(self.engine.dtype).removeprefix("torch.")
        self.version = f"qrnn-qiskit {metadata.version('qrnn-qiskit')}, kernel {self.engine.kernel}"
        self.compile_s: dict[str, float] = {}

    def inputs(self, angles: np.ndarray) -> Any:
        return self.torch.from_numpy(angles).to(self.engine.real_dtype)

    def step_forward(self, a: Any) -> tuple[Any, Any]:
        with self.torch.no_grad():
            state = self.engine.step(self.engine.initial_state(a.shape[0]), a)
            return state, self.engine.readouts(state)

    def step_grad(self, a: Any) -> tuple[Any, Any]:
        readouts, grad = self.sequence_grad(a[:, None])
        return readouts[:, 0], grad[:, 0]

    def sequence_grad(self, a: Any) -> tuple[Any, Any]:
        a = a.clone().requires_grad_(True)
        values, _ = self.engine.sequence(a)
        values.sum().backward()
        return values.detach(), a.grad

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().numpy()


class PennyLaneRunner:
    """lightning.qubit, adjoint differentiation with device VJPs, batch by parameter
    broadcasting."""

    precision = "complex64"
    batching = "parameter broadcasting (expanded by lightning.qubit into B tapes)"
    qiskit_order = False
    prefix_sequences = True  # T prefix circuits of 1…T steps instead of one carried state

    def __init__(self, spec: Any, circuit: Any) -> None:
        import pennylane as qml
        import torch

        self.torch, n = torch, spec.n_qubits
        gates = _gates(circuit)
        device = qml.device("lightning.qubit", wires=n, c_dtype=np.complex64)
        observables = (
            [qml.PauliX(q) for q in range(n)]
            + [qml.PauliY(q) for q in range(n)]
            + [qml.PauliZ(q) for q in range(n)]
        )

        def steps(theta: Any) -> None:  # theta [B, t, P]: t steps from |0…0⟩, broadcast over B
            for t in range(theta.shape[1]):
                for name, qubits, k in gates:
                    if name == "ry":
                        qml.RY(theta[:, t, k], wires=qubits[0])
                    elif name == "rz":
                        qml.RZ(theta[:, t, k], wires=qubits[0])
                    else:
                        qml.CNOT(wires=list(qubits))

        def readouts(theta: Any) -> list:
            steps(theta)
            return [qml.expval(o) for o in observables]

        def state_readouts(theta: Any) -> tuple:
            steps(theta)
            return (qml.state(), *[qml.expval(o) for o in observables])

        self._readouts = qml.QNode(
            readouts, device, interface="torch", diff_method="adjoint", device_vjp=True
        )
        self._state_readouts = qml.QNode(
            state_readouts, device, interface="torch", diff_method=None
        )
        self.version = (
            f"pennylane {metadata.version('pennylane')}, "
            f"pennylane-lightning {metadata.version('pennylane-lightning')}"
        )
        self.compile_s: dict[str, float] = {}

    def inputs(self, angles: np.ndarray) -> Any:
        return self.torch.from_numpy(angles).float()

    def step_forward(self, a: Any) -> tuple[Any, Any]:
        with self.torch.no_grad():
            state, *values = self._state_readouts(a[:, None])
        return state, self.torch.stack(values, 1)

    def step_grad(self, a: Any) -> tuple[Any, Any]:
        readouts, grad = self.sequence_grad(a[:, None])
        return readouts[:, 0], grad[:, 0]

    def sequence_grad(self, a: Any) -> tuple[Any, Any]:
        a = a.clone().requires_grad_(True)
        values = self.torch.stack(
            [self.torch.stack(self._readouts(a[:, : t + 1]), 1) for t in range(a.shape[1])], 1
        )
        values.sum().backward()
        return values.detach(), a.grad

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().numpy()


class TensorCircuitRunner:
    """tensorcircuit-ng on jax: jit(vmap(...)) over the batch, value_and_grad, lax.scan over
    steps."""

    precision = "complex64"
    batching = "jax.vmap over the batch inside jax.jit"
    qiskit_order = False
    prefix_sequences = False

    def __init__(self, spec: Any, circuit: Any) -> None:
        import jax
        import jax.numpy as jnp
        import tensorcircuit as tc

        tc.set_backend("jax")
        tc.set_dtype("complex64")
        self.jax, n = jax, spec.n_qubits
        gates = _gates(circuit)
        psi0 = jnp.zeros(1 << n, dtype=jnp.complex64).at[0].set(1.0)

        def step(state: Any, theta: Any) -> tuple[Any, Any]:  # one sample: state [2**n], theta [P]
            c = tc.Circuit(n, inputs=state)
            for name, qubits, k in gates:
                if name == "ry":
                    c.ry(qubits[0], theta=theta[k])
                elif name == "rz":
                    c.rz(qubits[0], theta=theta[k])
                else:
                    c.cnot(*qubits)
            out = c.state()
            read = tc.Circuit(n, inputs=out)
            values = (
                [read.expectation_ps(x=[q]) for q in range(n)]
                + [read.expectation_ps(y=[q]) for q in range(n)]
                + [read.expectation_ps(z=[q]) for q in range(n)]
            )
            return out, jnp.real(jnp.stack(values))

        def step_loss(theta: Any) -> tuple[Any, Any]:
            values = step(psi0, theta)[1]
            return values.sum(), values

        def sequence_loss(theta: Any) -> tuple[Any, Any]:  # theta [T, P]
            values = jax.lax.scan(step, psi0, theta)[1]
            return values.sum(), values

        self._fns = {
            "step_forward": jax.vmap(lambda th: step(psi0, th)),
            "step_grad": jax.vmap(jax.value_and_grad(step_loss, has_aux=True)),
            "sequence_grad": jax.vmap(jax.value_and_grad(sequence_loss, has_aux=True)),
        }
        self._compiled: dict[tuple, Callable] = {}
        self.version = (
            f"tensorcircuit-ng {metadata.version('tensorcircuit-ng')}, jax {jax.__version__}, "
            f"jaxlib {metadata.version('jaxlib')}"
        )
        self.compile_s: dict[str, float] = {}

    def _call(self, name: str, a: Any) -> Any:
        key = (name, a.shape)
        if key not in self._compiled:
            started = time.perf_counter()
            self._compiled[key] = self.jax.jit(self._fns[name]).lower(a).compile()
            self.compile_s[name] = time.perf_counter() - started
        return self.jax.block_until_ready(self._compiled[key](a))

    def inputs(self, angles: np.ndarray) -> Any:
        return self.jax.numpy.asarray(angles, dtype=np.float32)

    def step_forward(self, a: Any) -> tuple[Any, Any]:
        return self._call("step_forward", a)

    def step_grad(self, a: Any) -> tuple[Any, Any]:
        (_, values), grad = self._call("step_grad", a)
        return values, grad

    def sequence_grad(self, a: Any) -> tuple[Any, Any]:
        (_, values), grad = self._call("sequence_grad", a)
        return values, grad

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)


RUNNERS = {"qrnn": QRNNRunner, "pennylane": PennyLaneRunner, "tensorcircuit": TensorCircuitRunner}


def _limit_threads(threads: int) -> None:
    """Pin this process to ``threads`` cores before any numeric library starts its pools (0: no
    limit)."""
    if not threads:
        return
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        ).strip()
    import torch

    torch.set_num_threads(threads)


def _outputs(runner: Any, angles: np.ndarray) -> dict[str, np.ndarray]:
    """Every checked quantity as float64/complex128 numpy arrays (states in Qiskit order)."""
    seq = runner.inputs(angles)
    step = runner.inputs(np.ascontiguousarray(angles[:, 0]))
    state, readouts = map(runner.numpy, runner.step_forward(step))
    step_readouts, step_grad = map(runner.numpy, runner.step_grad(step))
    seq_readouts, seq_grad = map(runner.numpy, runner.sequence_grad(seq))
    n = int(np.log2(state.shape[1]))
    if not runner.qiskit_order:
        state = _to_qiskit_order(state, n)
    return {
        "state": state.astype(np.complex128),
        "readouts": readouts.astype(np.float64),
        "step readouts (fwd+bwd)": step_readouts.astype(np.float64),
        "step grad": step_grad.astype(np.float64),
        "seq readouts": seq_readouts.astype(np.float64),
        "seq grad": seq_grad.astype(np.float64),
    }


def _check_worker(job: dict) -> dict:
    """Largest absolute differences of one peer against the complex128 engine at each n (B=3)."""
    import torch

    from qrnn_qiskit.circuits import QRNNSpec, step_circuit

    report = {}
    for n in job["qubits"]:
        spec = QRNNSpec(n, job["layers"], "cx_ring", "xyz")
        circuit = step_circuit(spec)
        rng = np.random.default_rng(1234 + n)
        # single-precision-representable angles, so that input rounding is not counted as a
        # difference
        angles = (
            rng.uniform(-np.pi, np.pi, (3, job["seq_len"], spec.n_params))
            .astype(np.float32)
            .astype(np.float64)
        )
        reference = _outputs(QRNNRunner(spec, circuit, dtype=torch.complex128), angles)
        runner = RUNNERS[job["peer"]](spec, circuit)
        got = _outputs(runner, angles)
        diffs = {k: float(np.abs(got[k] - reference[k]).max()) for k in reference}
        scales = {k: float(max(1.0, np.abs(reference[k]).max())) for k in reference}
        report[f"n={n}"] = {
            "max_abs_diff": diffs,
            "scale": scales,
            "ok": all(diffs[k] <= job["atol"] * scales[k] for k in diffs),
        }
    return {
        "version": runner.version,
        "precision": runner.precision,
        "batching": runner.batching,
        "ok": all(r["ok"] for r in report.values()),
        "results": report,
    }


def _time_worker(job: dict) -> dict:
    from qrnn_qiskit.circuits import QRNNSpec, step_circuit

    n, batch, seq_len = job["n"], job["batch"], job["seq_len"]
    spec = QRNNSpec(n, job["layers"], "cx_ring", "xyz")
    runner = RUNNERS[job["peer"]](spec, step_circuit(spec))
    angles = (
        np.random.default_rng(0).standard_normal((batch, seq_len, spec.n_params)).astype(np.float32)
    )
    calls = {
        "step fwd": (runner.step_forward, runner.inputs(np.ascontiguousarray(angles[:, 0]))),
        "step fwd+bwd": (runner.step_grad, runner.inputs(np.ascontiguousarray(angles[:, 0]))),
        "seq fwd+bwd": (runner.sequence_grad, runner.inputs(angles)),
    }
    results: dict[str, dict] = {}
    for key, (fn, a) in calls.items():
        if key == "seq fwd+bwd" and "step fwd+bwd" in results:
            steps = seq_len * (seq_len + 1) // 2 if runner.prefix_sequences else seq_len
            estimate = results["step fwd+bwd"]["median_ms"] / 1e3 * steps
            if estimate > job["max_run_seconds"]:
                results[key] = {
                    "skipped": f"estimated {estimate:.0f} s a run ({steps} × step fwd+bwd) "
                    f"> --max-run-seconds {job['max_run_seconds']:g}"
                }
                continue
        started = time.perf_counter()
        fn(a)  # warm-up (and jit compilation, timed separately by the runner)
        times = [time.perf_counter() - started - runner.compile_s.get(fn.__name__, 0.0)]
        single = times[0] > job["max_seconds"]
        if not single:
            times, deadline = [], time.perf_counter() + job["max_seconds"]
            for _ in range(job["repeats"]):
                started = time.perf_counter()
                fn(a)
                times.append(time.perf_counter() - started)
                if time.perf_counter() > deadline and len(times) >= 3:
                    break
        results[key] = {
            "median_ms": 1e3 * statistics.median(times),
            "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times),
            "repeats": len(times),
            "single_warmup_run": single,
        }
        if fn.__name__ in runner.compile_s:
            results[key]["compile_s"] = runner.compile_s[fn.__name__]
    return {"results": results, "version": runner.version, "precision": runner.precision}


def _cell(result: dict | None) -> str:
    if not result:
        return "-"
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    text = f"{result['median_ms']:.2f} ({result['min_ms']:.2f}–{result['max_ms']:.2f})"
    return text + " [1 run]" if result["single_warmup_run"] else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(parser)
    parser.add_argument(
        "--max-run-seconds",
        type=float,
        default=300.0,
        help="skip a T-step measurement whose single run is estimated to take longer",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="cores per run (0: library defaults, all cores)"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="ratios are against the first one")
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare every peer with the complex128 engine at n=4, 8, B=3 first (default: on)",
    )
    parser.add_argument(
        "--atol", type=float, default=1e-5, help="check tolerance × max(1, |reference|)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peers-cpu.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        job = json.loads(args.worker)
        _limit_threads(job["threads"])
        print(json.dumps(_check_worker(job) if job["task"] == "check" else _time_worker(job)))
        return

    peers = args.peers.split(",")
    if unknown := set(peers) - set(PEERS):
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    seq_label = f"T={args.seq_len} fwd+bwd"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "threads": args.threads or "library default",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    checks: dict[str, dict] = {}
    if args.check:
        for peer in peers:
            checks[peer] = spawn(
                __file__,
                {
                    "task": "check",
                    "peer": peer,
                    "qubits": [4, 8],
                    "layers": args.layers,
                    "seq_len": args.seq_len,
                    "atol": args.atol,
                    "threads": args.threads,
                },
            )
            if "error" in checks[peer]:
                print(f"check {peer}: {checks[peer]['error']}", file=sys.stderr)
                continue
            worst = max(
                d for r in checks[peer]["results"].values() for d in r["max_abs_diff"].values()
            )
            print(
                f"check {peer:13s} {'ok  ' if checks[peer]['ok'] else 'FAIL'} largest |diff| "
                f"{worst:.1e} "
                f"({checks[peer]['version']}, {checks[peer]['precision']})",
                file=sys.stderr,
            )
    refused = {
        p: checks[p].get("error") or "failed the correctness check"
        for p in peers
        if p in checks and not checks[p].get("ok")
    }

    rows = []
    for n in args.qubits:
        for batch in args.batch:
            entry: dict[str, Any] = {"n": n, "batch": batch}
            for peer in peers:
                if peer in refused:
                    entry[peer] = {"error": f"not timed: {refused[peer]}"}
                    continue
                entry[peer] = spawn(
                    __file__,
                    {
                        "task": "time",
                        "peer": peer,
                        "n": n,
                        "batch": batch,
                        "layers": args.layers,
                        "seq_len": args.seq_len,
                        "repeats": args.repeats,
                        "max_seconds": args.max_seconds,
                        "max_run_seconds": args.max_run_seconds,
                        "threads": args.threads,
                    },
                )
                print(f"  measured {peer:13s} n={n:2d} B={batch:3d}", file=sys.stderr, flush=True)
            rows.append(entry)

    subject, others = peers[0], peers[1:]
    compiled = [p for p in peers if p == "tensorcircuit"]
    header = (
        "| n | B | measurement | "
        + "".join(f"{p} ms (range) | " for p in peers)
        + "".join(f"{o}/{subject} | " for o in others)
        + "".join(f"{p} compile s | " for p in compiled)
    )
    print(
        f"\nQRNN step circuit, L={args.layers}, cx_ring, xyz readouts, complex64, "
        f"threads: {meta['threads']}, checked: {args.check}"
    )
    print(header.rstrip())
    print("|---" * (header.count("|") - 1) + "|")
    for entry in rows:
        for key in MEASUREMENTS:
            measured = {p: entry[p].get("results", {}).get(key) for p in peers}
            label = seq_label if key == "seq fwd+bwd" else key
            cells = [str(entry["n"]), str(entry["batch"]), label]
            cells += [
                _cell(measured[p]) if measured[p] else entry[p].get("error", "-") for p in peers
            ]
            first = measured[subject]
            cells += [
                f"{measured[o]['median_ms'] / first['median_ms']:.1f}×"
                if first and measured[o] and "median_ms" in first and "median_ms" in measured[o]
                else "-"
                for o in others
            ]
            cells += [
                f"{measured[p]['compile_s']:.1f}"
                if measured[p] and "compile_s" in measured[p]
                else "-"
                for p in compiled
            ]
            print("| " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "args": vars(args),
                "checks": checks,
                "rows": rows,
                "labels": {"seq fwd+bwd": seq_label},
            },
            indent=2,
        )
    )
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()

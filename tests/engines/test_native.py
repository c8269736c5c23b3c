"""The native CPU kernels: agreement with the torch path at larger n, threading, selection and
fallbacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from engine_kinds import circuit_engine

from qrnn_qiskit.backends import StatevectorEngine, native
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit

TOL = {torch.complex128: 1e-10, torch.complex64: 2e-5}


def _run(engine: StatevectorEngine, angles: torch.Tensor, weights: torch.Tensor):
    a = angles.to(engine.real_dtype).clone().requires_grad_(True)
    values, state = engine.sequence(a)
    ((values * weights.to(values.dtype)).sum() + state.real.sum()).backward()
    return values.detach(), state.detach(), a.grad


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
@pytest.mark.parametrize("entangler", ["cx_ring", "cz_ring"])
def test_native_equals_torch_path_at_twelve_qubits(dtype, entangler):
    spec = QRNNSpec(12, 2, entangler, "xyz")
    engines = [
        circuit_engine(k, step_circuit(spec), readout_observables(spec), dtype)
        for k in ("native", "torch")
    ]
    gen = torch.Generator().manual_seed(3)
    angles = torch.randn(3, 4, spec.n_params, generator=gen, dtype=torch.float64)
    weights = torch.randn(4, spec.n_readouts, generator=gen, dtype=torch.float64)
    fast, reference = (_run(e, angles, weights) for e in engines)
    for x, y in zip(fast, reference):
        torch.testing.assert_close(x, y, atol=TOL[dtype], rtol=TOL[dtype])


def test_threads_split_the_batch_without_changing_results(monkeypatch):
    monkeypatch.setattr(native, "MIN_AMPLITUDES_PER_THREAD", 1)  # split even this small batch
    spec = QRNNSpec(7, 2, "cx_ring", "xyz")
    engine = circuit_engine(
        "native", step_circuit(spec), readout_observables(spec), torch.complex64
    )
    angles = torch.randn(5, 3, spec.n_params, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(3, spec.n_readouts, generator=torch.Generator().manual_seed(2))
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(_run(engine, angles, weights))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


def test_kernel_selection_and_bad_arguments():
    spec = QRNNSpec(4, 1)
    circuit, observables = step_circuit(spec), readout_observables(spec)
    assert StatevectorEngine(circuit, observables, kernel="torch").kernel == "torch"
    if native.load() is not None:
        assert StatevectorEngine(circuit, observables).kernel == "native"
        assert "kernel='native'" in repr(StatevectorEngine(circuit, observables))
    with pytest.raises(ValueError, match="kernel must be"):
        StatevectorEngine(circuit, observables, kernel="fast")
    small = QRNNSpec(2, 1)
    with pytest.raises(ValueError, match="at least 3 qubits"):
        StatevectorEngine(step_circuit(small), readout_observables(small), kernel="native")
    assert StatevectorEngine(step_circuit(small), readout_observables(small)).kernel == "torch"


_PROBE = """
from qrnn_qiskit.backends import StatevectorEngine, native
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit
spec = QRNNSpec(4, 1)
print(StatevectorEngine(step_circuit(spec), readout_observables(spec)).kernel)
print(native.status())
try:
    StatevectorEngine(step_circuit(spec), readout_observables(spec), kernel="native")
except RuntimeError as error:
    print("refused:", error)
"""


def _probe(tmp_path, **env) -> list[str]:
    full = {**os.environ, "QRNN_NATIVE_CACHE": str(tmp_path / "native"), **env}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=full, check=True
    )
    return done.stdout.splitlines()


def test_disabled_native_kernels_fall_back_to_torch(tmp_path):
    kernel, status, refused = _probe(tmp_path, QRNN_NATIVE="0")
    assert kernel == "torch"
    assert status == "disabled by QRNN_NATIVE=0"
    assert refused.startswith("refused: kernel='native' requested but disabled")


def test_a_failing_compiler_falls_back_to_torch_and_says_why(tmp_path):
    kernel, status, refused = _probe(tmp_path, CC="false")
    assert kernel == "torch"
    assert "failed" in status and refused.startswith("refused:")
    assert not list((tmp_path / "native").glob("*.so"))


def test_the_library_is_built_once_per_cache(tmp_path):
    if native.load() is None:
        pytest.skip(native.status())
    assert _probe(tmp_path)[0] == "native"
    built = list((tmp_path / "native").glob("qrnn_native_*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert _probe(tmp_path)[0] == "native"
    assert built[0].stat().st_mtime_ns == stamp


def test_the_fork_hook_drops_the_parents_pool_and_the_child_builds_its_own(monkeypatch):
    """The rule ``os.register_at_fork`` applies in a child, checked without forking."""
    monkeypatch.setattr(native, "MIN_AMPLITUDES_PER_THREAD", 1)
    runtime = native.NativeRuntime()
    runtime.set_threads(2)
    seen = []
    runtime.run_split(2, 4, lambda k, b0, b1: seen.append((k, b0, b1)))
    assert sorted(seen) == [(0, 0, 2), (1, 2, 4)]
    assert runtime.pool_threads == 2 and runtime.pools_built == 1
    parents = runtime._pool
    runtime.after_fork_in_child()  # what a forked child runs first
    assert runtime.pool_threads == 0 and runtime.pools_built == 0
    runtime.run_split(2, 4, lambda k, b0, b1: None)
    assert runtime._pool is not parents and runtime.pools_built == 1 and runtime.pool_threads == 2


_FORK_PROBE = """
import os, select, signal, sys
import torch
torch.set_num_threads(1)  # one torch thread on both sides: GNU OpenMP is not fork-safe
from qrnn_qiskit.backends import StatevectorEngine, native
from qrnn_qiskit.backends.statevector import native as runtime_module
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit
runtime_module.MIN_AMPLITUDES_PER_THREAD = 1  # split even this small batch over the pool
native.set_threads(2)
spec = QRNNSpec(5, 1)
engine = StatevectorEngine(step_circuit(spec), readout_observables(spec), kernel="native")
angles = torch.randn(4, 2, spec.n_params, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    expected = engine.sequence(angles)[0]
assert native.RUNTIME.pools_built == 1, "the parent did not use its pool"
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        signal.alarm(60)  # the child's own hard timeout: SIGALRM ends it even if it hangs
        torch.set_num_threads(1)
        native.set_threads(2)
        with torch.no_grad():
            values = engine.sequence(angles)[0]
        report = (f"equal={torch.equal(values, expected)} built={native.RUNTIME.pools_built} "
                  f"threads={native.RUNTIME.pool_threads} torch={torch.get_num_threads()}")
        os.write(write, report.encode())
    finally:
        os._exit(0)
os.close(write)
ready, _, _ = select.select([read], [], [], 90)
if not ready:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    sys.exit("the forked child did not answer within 90 s")
print(os.read(read, 200).decode())
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_builds_its_own_thread_pool_in_a_fresh_interpreter():
    """Integration: a parent that split a batch over its pool forks; the child (torch at one thread,
    the kernels' threads set explicitly) computes the same values on a pool it built itself. A
    fresh interpreter keeps this test independent of the suite's own OpenMP state. Hard timeouts at
    every level turn a hang into a failure: the child's alarm (60 s), the parent's wait for it
    (90 s, then SIGKILL), this test's wait for the parent (120 s)."""
    if native.load() is None:
        pytest.skip(native.status())
    done = subprocess.run(
        [sys.executable, "-c", _FORK_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = "equal=True built=1 threads=2 torch=1"
    assert done.stdout.strip() == expected, done.stdout + done.stderr[-500:]


def test_engines_with_native_kernels_copy_and_pickle():
    import copy
    import pickle

    spec = QRNNSpec(4, 2)
    engine = circuit_engine(
        "native", step_circuit(spec), readout_observables(spec), torch.complex64
    )
    angles = torch.randn(2, 3, spec.n_params)
    expected, _ = engine.sequence(angles)
    for clone in (copy.deepcopy(engine), pickle.loads(pickle.dumps(engine))):
        assert clone.kernel == "native"
        assert torch.equal(clone.sequence(angles)[0], expected)


def test_small_batches_stay_on_the_calling_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads_for = native.RUNTIME.threads_for
        assert threads_for(32, 1 << 8) == 1  # n = 8, B = 32: a hand-off costs more than the work
        assert threads_for(32, 1 << 12) == 2  # n = 12, B = 32
        assert threads_for(1, 1 << 20) == 1
    finally:
        torch.set_num_threads(before)


def test_native_thread_budget_is_separate_from_torch(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert native.NativeRuntime().max_threads() == 1  # follows torch by default
        monkeypatch.setenv("QRNN_NATIVE_THREADS", "2")  # read when a runtime is created
        runtime = native.NativeRuntime()
        assert runtime.max_threads() == 2 and runtime.threads_for(32, 1 << 12) == 2
        native.set_threads(3)
        assert native.max_threads() == 3
        with pytest.raises(ValueError, match="positive integer"):
            native.set_threads(0)
    finally:
        native.set_threads(None)
        torch.set_num_threads(before)

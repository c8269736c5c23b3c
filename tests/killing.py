"""Kill ``qrnn`` commands with SIGKILL at random moments (tests/test_fault_injection.py).

A *zygote*: a fresh interpreter (torch and OpenMP at one thread) that imports the package and what
its commands import lazily, computes nothing, and forks one child per command. A command then
starts in milliseconds, so a random delay lands in its work rather than in Python's imports. The
zygote never runs an OpenMP region or a torch operation, so no child inherits a thread pool (the
children build their own; the native runtime resets its pool at fork). Every wait has a hard
timeout, the zygote is stopped by its pid when the test ends, and it kills any child still
running when it stops.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ZYGOTE = r"""
import json, os, signal, sys, threading, time
import torch
torch.set_num_threads(1)
import torch._dynamo  # what torch.optim imports at its first optimiser (5 s)
import qrnn_qiskit.cli
import qrnn_qiskit.evaluation.cli, qrnn_qiskit.evaluation.runner, qrnn_qiskit.backends.ibm
import qrnn_qiskit.training.trainer, qrnn_qiskit.training.tasks.registry  # lazy in the package
from qiskit import qpy
import qiskit_ibm_runtime
from qiskit_ibm_runtime import Batch, QiskitRuntimeService
from qiskit_ibm_runtime.executor_sampler import Sampler
assert threading.active_count() == 1, threading.enumerate()
print(json.dumps({"ready": os.getpid()}), flush=True)
children = set()
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "run":
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                # a forked child runs torch at one thread (GNU OpenMP is not fork-safe): set it
                # again here, before any command, and refuse to run otherwise
                torch.set_num_threads(1)
                assert torch.get_num_threads() == 1, torch.get_num_threads()
                # the child's own hard timeout: SIGALRM ends it even if the zygote's wait never
                # comes (the tests' waits are shorter; pytest-timeout is 600 s)
                signal.alarm(int(request.get("alarm", 900)))
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(log, 1)
                os.dup2(log, 2)
                if request.get("fsize"):  # ulimit -f: writes past it fail with EFBIG
                    import resource
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"],) * 2)
                sys.argv = ["qrnn", *request["argv"]]
                code = qrnn_qiskit.cli.main(request["argv"])
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)
        print(json.dumps({"pid": pid}), flush=True)
    elif request["op"] == "wait":
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(request["pid"], os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(request["pid"], signal.SIGKILL)
                os.waitpid(request["pid"], 0)
                code = "timeout"
                break
            time.sleep(0.005)
        children.discard(request["pid"])
        print(json.dumps({"code": code}), flush=True)
for pid in children:  # stdin closed (the test ended, maybe early): no child outlives the zygote
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
os._exit(0)  # skip the interpreter's teardown of everything imported
"""


class Zygote:
    """Runs ``qrnn`` commands as forked children of one prepared interpreter."""

    def __init__(self, env: dict[str, str] | None = None, timeout: float = 180.0) -> None:
        environment = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "QRNN_NATIVE_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=ROOT,
        )
        self._read(timeout)  # {"ready": pid}

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise TimeoutError(f"the zygote did not answer within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote exited (code {self.process.wait(5)})")
        return json.loads(line)

    def _send(self, request: dict) -> None:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def start(self, argv: list[str], log: Path, fsize: int | None = None) -> int:
        """Fork a child running ``qrnn argv`` (output appended to ``log``; ``fsize``: the largest
        file it may write, as ``ulimit -f``)."""
        request = {"op": "run", "argv": [str(a) for a in argv], "log": str(log), "fsize": fsize}
        self._send(request)
        return self._read(30)["pid"]

    def wait(self, pid: int, timeout: float = 120.0) -> int | str:
        """The child's exit code (negative: the signal that ended it; "timeout": killed here)."""
        self._send({"op": "wait", "pid": pid, "timeout": timeout})
        return self._read(timeout + 30)["code"]

    def run(
        self, argv: list[str], log: Path, timeout: float = 120.0, fsize: int | None = None
    ) -> tuple[int | str, float]:
        started = time.monotonic()
        code = self.wait(self.start(argv, log, fsize), timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()  # our own zygote, by its handle
                self.process.wait(10)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_until_done(
    zygote: Zygote,
    argv,
    log: Path,
    rng,
    window: float,
    kills: int,
    *,
    timeout: float = 120.0,
) -> tuple[int, int]:
    """Run ``argv()`` (called before every start: it may depend on what the run directory holds),
    SIGKILL it after a random delay in [0, window) up to ``kills`` times, then let it finish.
    Returns (exit code of the finishing run, kills that landed while it ran)."""
    landed = 0
    for _ in range(kills * 4 + 1):  # a kill can come after the command finished
        pid = zygote.start(argv(), log)
        if landed < kills:
            time.sleep(rng.uniform(0.0, window))
            try:
                os.kill(pid, signal.SIGKILL)  # our own child
            except ProcessLookupError:
                pass
        code = zygote.wait(pid, timeout)
        if code == -signal.SIGKILL and landed < kills:
            landed += 1
            continue
        return code, landed
    raise AssertionError(f"{argv()} never finished after {landed} kills")

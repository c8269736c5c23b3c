"""IBM Quantum execution through qiskit-ibm-runtime: account, backend, Batch, submission and
retrieval.

This is the only module that touches qiskit-ibm-runtime's primitives. It uses the executor-based
``qiskit_ibm_runtime.executor_sampler.Sampler`` (``SamplerV2`` is deprecated since 0.50 and the
Estimator rejects dynamic circuits); expectation values are computed from counts by the protocols.

Account: Qiskit's saved account file or the ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` /
``QISKIT_IBM_CHANNEL`` environment variables — never a command-line argument, and we never write it.
``QISKIT_IBM_CHANNEL=local`` selects qiskit-ibm-runtime's local testing mode: ``ibm:<fake backend>``
then runs the same code offline on a fake backend (local jobs live only as long as the process that
made them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager

from ..errors import QRNNError
from .noisy import Counts, Executor, Pub, TargetSpec, active_qubits, check_dynamic_support

SAVE_ACCOUNT_HINT = (
    'save one once with: python -c "from qiskit_ibm_runtime import QiskitRuntimeService as S; '
    "S.save_account(token='<API key>', instance='<CRN>', set_as_default=True)\" "
    "(or set QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE; QISKIT_IBM_CHANNEL=local runs offline on "
    "fake backends)"
)
DEFAULT_REP_DELAY = 250e-6  # seconds between shots when the backend does not say


class LostJobError(QRNNError):
    """A local-mode job that died with the process that ran it (IBM's own jobs are never lost):
    the runner may submit it again, seeded as before, since nothing was paid for."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions worth retrying: network failures and result-wait timeouts (not failed jobs)."""
    from qiskit_ibm_runtime.exceptions import RuntimeJobTimeoutError

    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, RuntimeJobTimeoutError]
    try:
        from qiskit_ibm_runtime.api.exceptions import RequestsApiError

        errors.append(RequestsApiError)
    except ImportError:  # pragma: no cover - moved in some versions
        pass
    try:
        import requests

        errors.append(requests.exceptions.RequestException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def open_service() -> Any:
    """A ``QiskitRuntimeService`` from the environment or the saved account (local mode when
    ``QISKIT_IBM_CHANNEL=local``); a clear error, with how to save an account, when there is
    none."""
    from qiskit_ibm_runtime import QiskitRuntimeService
    from qiskit_ibm_runtime.accounts import AccountManager
    from qiskit_ibm_runtime.accounts.exceptions import AccountNotFoundError

    if os.environ.get("QISKIT_IBM_CHANNEL", "").strip() == "local":
        return QiskitRuntimeService(channel="local")
    try:
        AccountManager.get()
    except AccountNotFoundError:
        raise QRNNError(f"no IBM Quantum account found; {SAVE_ACCOUNT_HINT}") from None
    except Exception as exc:  # malformed account file or env vars
        raise QRNNError(
            f"IBM Quantum account is unusable ({str(exc).splitlines()[0]}); {SAVE_ACCOUNT_HINT}"
        ) from None
    try:
        return QiskitRuntimeService()
    except Exception as exc:
        raise QRNNError(
            f"could not connect to IBM Quantum ({str(exc).splitlines()[0][:200]})"
        ) from None


def with_retries(
    call: Callable[[], Any],
    *,
    attempts: int = 6,
    base_delay: float = 2.0,
    max_delay: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "IBM request",
) -> Any:
    """``call()`` retried on transient errors with exponential backoff (base_delay·2^i, capped)."""
    errors = transient_errors()
    for attempt in range(attempts):
        try:
            return call()
        except errors as exc:
            if attempt == attempts - 1:
                raise QRNNError(
                    f"{what} kept failing after {attempts} attempts ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); run 'qrnn collect' "
                    "again later"
                ) from None
            sleep(min(max_delay, base_delay * 2**attempt))
    raise AssertionError("unreachable")


class IBMExecutor(Executor):
    """Submits PUBs as Sampler jobs in one ``Batch`` on an IBM backend and fetches their counts."""

    remote = True

    def __init__(
        self,
        backend_name: str,
        service: Any = None,
        optimization_level: int = 1,
        seed_transpiler: int = 0,
        retry_delay: float = 2.0,
    ) -> None:
        self.target_spec = TargetSpec("ibm", backend_name)
        self.service = service if service is not None else open_service()
        self.local = bool(getattr(self.service, "is_local", False))
        self.optimization_level = optimization_level
        self.seed_transpiler = seed_transpiler
        self.retry_delay = retry_delay
        try:
            self.backend = self.service.backend(backend_name)
        except QRNNError:
            raise
        except Exception as exc:
            names = self._backend_names()
            raise QRNNError(
                f"IBM backend {backend_name!r} is not available ({str(exc).splitlines()[0][:120]})"
                + (f"; available: {', '.join(names)}" if names else "")
            ) from None
        self.seconds_target = self.backend.target
        self._batch: Any = None
        self._jobs: dict[
            str, Any
        ] = {}  # jobs submitted by this process (the only record local mode has)

    def _backend_names(self) -> list[str]:
        try:
            return sorted(b.name for b in self.service.backends())
        except Exception:
            return []

    @property
    def channel(self) -> str:
        return (
            "local" if self.local else str(getattr(self.service, "channel", "ibm_quantum_platform"))
        )

    @property
    def rep_delay(self) -> float:
        value = getattr(self.backend, "default_rep_delay", None)
        try:
            return float(value) if value else DEFAULT_REP_DELAY
        except (TypeError, ValueError):
            return DEFAULT_REP_DELAY

    def prepare(
        self, circuits: Sequence[QuantumCircuit], dynamic: bool = False
    ) -> list[QuantumCircuit]:
        """ISA circuits for the full backend (preset pass manager)."""
        widest = max(c.num_qubits for c in circuits)
        if widest > self.backend.num_qubits:
            raise QRNNError(
                f"{self.backend.name} has {self.backend.num_qubits} qubits; these circuits need "
                f"{widest}"
            )
        if dynamic:
            check_dynamic_support(self.backend.target, self.backend.name)
        manager = generate_preset_pass_manager(
            self.optimization_level, backend=self.backend, seed_transpiler=self.seed_transpiler
        )
        isa = list(manager.run(list(circuits)))
        self.physical_qubits = sorted({q for c in isa for q in active_qubits(c)})
        return isa

    def open_batch(self) -> Any:
        from qiskit_ibm_runtime import Batch

        if self._batch is None:
            self._batch = with_retries(
                lambda: Batch(backend=self.backend),
                what="opening a Batch",
                base_delay=self.retry_delay,
            )
        return self._batch

    @property
    def batch_id(self) -> str | None:
        return getattr(self._batch, "session_id", None) if self._batch is not None else None

    def submit(self, pubs: Sequence[Pub], shots: int, seed: int | None = None) -> str:
        """Submit one Sampler job (all PUBs) in the Batch; returns its job id without waiting.
        ``seed`` seeds local mode's simulator (a resubmitted lost job then gives the same counts);
        IBM backends ignore it."""
        from qiskit_ibm_runtime.executor_sampler import Sampler

        if shots < 1:
            raise QRNNError(f"--shots must be >= 1, got {shots}")
        sampler = Sampler(mode=self.open_batch())
        if self.local and seed is not None:
            sampler.options.simulator.seed_simulator = seed
        job = with_retries(
            lambda: sampler.run([p if p[1] is not None else (p[0],) for p in pubs], shots=shots),
            what="job submission",
            base_delay=self.retry_delay,
        )
        job_id = job.job_id()
        self._jobs[job_id] = job
        return job_id

    def job(self, job_id: str) -> Any:
        if job_id in self._jobs:
            return self._jobs[job_id]
        if self.local:
            raise LostJobError(
                f"job {job_id} is unknown to this local-mode session (local jobs do not outlive "
                "the process that submitted them)"
            )
        return with_retries(
            lambda: self.service.job(job_id),
            what=f"looking up job {job_id}",
            base_delay=self.retry_delay,
        )

    def fetch(self, job_id: str, timeout: float | None = None) -> list[list[Counts]]:
        """Wait for a job (retrying transient errors) and return counts per PUB and parameter
        row."""
        from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError

        job = self.job(job_id)
        try:
            result = with_retries(
                lambda: job.result(timeout=timeout) if timeout is not None else job.result(),
                what=f"fetching job {job_id}",
                base_delay=self.retry_delay,
            )
        except RuntimeJobFailureError as exc:
            raise QRNNError(
                f"job {job_id} failed on {self.backend.name} ({str(exc).splitlines()[0][:200]}); "
                "start the evaluation over with 'qrnn submit ... --restart'"
            ) from None
        out = []
        for pub_result in result:
            data = pub_result.data
            names = list(data.keys())
            if len(names) != 1:
                raise QRNNError(
                    f"job {job_id}: expected one classical register per circuit, got {names}"
                )
            bits = data[names[0]]
            rows = bits.shape[0] if bits.shape else 1
            out.append([dict(bits.get_counts(loc=i if bits.shape else None)) for i in range(rows)])
        return out

    def run(self, pubs: Sequence[Pub], shots: int, seed: int = 0) -> list[list[Counts]]:
        return self.fetch(self.submit(pubs, shots))

    def close(self) -> None:
        if self._batch is not None:
            try:
                self._batch.close()
            except Exception:  # closing is a courtesy; the jobs are already recorded
                pass
            self._batch = None


__all__ = [
    "IBMExecutor",
    "LostJobError",
    "SAVE_ACCOUNT_HINT",
    "open_service",
    "transient_errors",
    "with_retries",
]

"""The network boundary to IBM Quantum: the account and service, ``RuntimeBoundary`` (everything
that crosses the network: execution modes, Sampler jobs, job lookup), and the retry policy for
transient failures (never a 4xx).

Account: Qiskit's saved account file or the ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` /
``QISKIT_IBM_CHANNEL`` environment variables — never a command-line argument, and we never write it.
``QISKIT_IBM_CHANNEL=local`` selects qiskit-ibm-runtime's local testing mode (local jobs live only
as long as the process that made them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import QRNNError

SAVE_ACCOUNT_HINT = (
    'save one once with: python -c "from qiskit_ibm_runtime import QiskitRuntimeService as S; '
    "S.save_account(token='<API key>', instance='<CRN>', set_as_default=True)\" "
    "(or set QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE; QISKIT_IBM_CHANNEL=local runs offline on "
    "fake backends)"
)


class LostJobError(QRNNError):
    """A local-mode job that died with the process that ran it (IBM's own jobs are never lost):
    the runner may submit it again, seeded as before, since nothing was paid for."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exception types that may be transient: network failures, result-wait timeouts and API
    errors (an API error is retried only when ``is_transient`` says so: never a 4xx)."""
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


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None when unknown)."""
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        return None
    return None if code is None or code < 0 else code


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a network failure, a timeout or a 5xx — never a 4xx (bad request, auth,
    quota, not found, rate limit: a retry cannot fix those, and may duplicate work)."""
    if not isinstance(exc, transient_errors()):
        return False
    code = status_code(exc)
    return code is None or code >= 500


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text.splitlines()[0][:limit] if text else ""


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
    recover: Callable[[], Any] | None = None,
) -> Any:
    """``call()`` retried on transient errors (``is_transient``) with exponential backoff
    (base_delay·2^i, capped). A 4xx API error is a one-line QRNNError at once. ``recover()``, when
    given, runs after each transient failure and before the retry; a non-None result is returned
    instead of calling again (a submission whose reply was lost is looked up by its tags)."""
    errors = transient_errors()
    for attempt in range(attempts):
        try:
            return call()
        except errors as exc:
            if not is_transient(exc):
                raise QRNNError(
                    f"{what} was refused by IBM Quantum (HTTP {status_code(exc)}: "
                    f"{_first_line(exc)}); not retried"
                ) from None
            if recover is not None:
                found = recover()
                if found is not None:
                    return found
            if attempt == attempts - 1:
                raise QRNNError(
                    f"{what} kept failing after {attempts} attempts ({type(exc).__name__}: "
                    f"{_first_line(exc)}); run 'qrnn collect' again later"
                ) from None
            sleep(min(max_delay, base_delay * 2**attempt))
    raise AssertionError("unreachable")


class RuntimeBoundary:
    """Everything that crosses the network to IBM Quantum (or into qiskit-ibm-runtime's local
    mode): execution modes, Sampler jobs, job lookup by id or tags. Tests replace this one object.
    """

    def __init__(self, service: Any) -> None:
        self.service = service

    @property
    def local(self) -> bool:
        return bool(getattr(self.service, "is_local", False))

    def backend(self, name: str) -> Any:
        return self.service.backend(name)

    def backend_names(self) -> list[str]:
        return sorted(b.name for b in self.service.backends())

    def open_mode(self, kind: str, backend: Any, mode_id: str | None = None) -> Any:
        """A Session (dependent rounds) or Batch (independent circuits); reopen ``mode_id`` when
        it is still accepting jobs."""
        from qiskit_ibm_runtime import Batch, Session

        cls = Session if kind == "session" else Batch
        if mode_id and not self.local:
            try:
                mode = cls.from_id(mode_id, self.service)
                if getattr(mode, "_active", True):
                    return mode
            except Exception:  # closed, expired or unknown: open a new one
                pass
        return cls(backend=backend)

    def run_sampler(
        self,
        mode: Any,
        pubs: list,
        shots: int,
        options: dict,
        tags: Sequence[str],
        seed: int | None = None,
    ) -> Any:
        """One Sampler job; ``seed`` seeds local mode's simulator (a resubmitted lost local job then
        gives the same counts; IBM backends ignore it)."""
        from qiskit_ibm_runtime.executor_sampler import Sampler

        sampler = Sampler(mode=mode)
        if self.local and seed is not None:
            sampler.options.simulator.seed_simulator = seed
        twirling = options.get("twirling", {})
        sampler.options.twirling.enable_gates = bool(twirling.get("enable_gates", False))
        sampler.options.twirling.enable_measure = bool(twirling.get("enable_measure", False))
        dd = options.get("dynamical_decoupling", {})
        sampler.options.dynamical_decoupling.enable = bool(dd.get("enable", False))
        if dd.get("sequence_type"):
            sampler.options.dynamical_decoupling.sequence_type = dd["sequence_type"]
        sampler.options.environment.job_tags = list(tags)
        return sampler.run(pubs, shots=shots)

    def find_jobs(self, tags: Sequence[str], backend_name: str) -> list[str]:
        """Ids of jobs that carry every tag (newest first; none in local mode)."""
        if self.local:
            return []
        jobs = self.service.jobs(job_tags=list(tags), backend_name=backend_name, limit=10)
        return [job.job_id() for job in jobs]

    def job(self, job_id: str) -> Any:
        return self.service.job(job_id)

    def close(self, mode: Any) -> None:
        mode.close()


__all__ = [
    "LostJobError",
    "RuntimeBoundary",
    "SAVE_ACCOUNT_HINT",
    "is_transient",
    "open_service",
    "status_code",
    "transient_errors",
    "with_retries",
]

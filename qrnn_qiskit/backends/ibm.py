"""IBM Quantum execution through qiskit-ibm-runtime: backend, Session/Batch, tagged submission,
lookup and retrieval (``IBMExecutor``), over the account, network boundary and retries of
``backends.boundary``.

These two are the only modules that touch qiskit-ibm-runtime's primitives. They use the
executor-based ``qiskit_ibm_runtime.executor_sampler.Sampler`` (``SamplerV2`` is deprecated since
0.50 and the Estimator rejects dynamic circuits); expectation values are computed from counts by the
protocols.

Account: Qiskit's saved account file or the ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` /
``QISKIT_IBM_CHANNEL`` environment variables — never a command-line argument, and we never write it.
``QISKIT_IBM_CHANNEL=local`` selects qiskit-ibm-runtime's local testing mode: ``ibm:<fake backend>``
then runs the same code offline on a fake backend (local jobs live only as long as the process that
made them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager

from ..errors import QRNNError

# the network boundary and retries live in backends.boundary; re-exported for callers that import
# them from here
from .boundary import (
    SAVE_ACCOUNT_HINT,
    LostJobError,
    RuntimeBoundary,
    _first_line,
    is_transient,
    open_service,
    status_code,
    transient_errors,
    with_retries,
)
from .noisy import Counts, Pub, RemoteExecutor
from .targets import TargetSpec, active_qubits, check_dynamic_support

DEFAULT_REP_DELAY = 250e-6  # seconds between shots when the backend does not say


class IBMExecutor(RemoteExecutor):
    """Submits PUBs as Sampler jobs on an IBM backend and fetches their counts.

    Replay rounds depend on each other and run in one ``Session`` (``mode="session"``); the
    dynamic protocol's independent circuits in a ``Batch``. Every job is tagged (run, evaluation,
    round); a job whose id never reached disk is found by its tags before anything is resubmitted.
    The mode is closed when the evaluation is finished (``close``).
    """

    def __init__(
        self,
        backend_name: str,
        service: Any = None,
        optimization_level: int = 3,
        seed_transpiler: int = 0,
        retry_delay: float = 2.0,
        *,
        layout_method: str = "esp",
        sampler_options: dict | None = None,
        mode: str = "session",
        boundary: RuntimeBoundary | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in ("session", "batch"):
            raise ValueError(f"mode must be 'session' or 'batch', got {mode!r}")
        self.target_spec = TargetSpec("ibm", backend_name)
        if boundary is None:
            boundary = RuntimeBoundary(service if service is not None else open_service())
        self.boundary = boundary
        self.service = boundary.service
        self.local = boundary.local
        self.optimization_level = optimization_level
        self.seed_transpiler = seed_transpiler
        self.retry_delay = retry_delay
        self.layout_method = layout_method
        self.sampler_options = sampler_options or {}
        self.mode_kind = mode
        self.mode_id: str | None = None  # a recorded Session/Batch id to reopen (collect)
        self.layout = None
        self._sleep = sleep
        try:
            self.backend = boundary.backend(backend_name)
        except QRNNError:
            raise
        except Exception as exc:
            names = self._backend_names()
            raise QRNNError(
                f"IBM backend {backend_name!r} is not available ({_first_line(exc, 120)})"
                + (f"; available: {', '.join(names)}" if names else "")
            ) from None
        self.seconds_target = self.backend.target
        self.calibration_target = self.backend.target
        self._mode: Any = None
        # jobs submitted by this process (the only record local mode has), and their tags
        self._jobs: dict[str, Any] = {}
        self._tagged: dict[tuple[str, ...], str] = {}

    def _backend_names(self) -> list[str]:
        try:
            return self.boundary.backend_names()
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
        """ISA circuits for the full backend, all on one layout chosen once (noise-aware, from the
        widest circuit) and pinned with ``initial_layout``."""
        from .layout import choose_layout

        widest = max(circuits, key=lambda c: (c.num_qubits, c.size()))
        if widest.num_qubits > self.backend.num_qubits:
            raise QRNNError(
                f"{self.backend.name} has {self.backend.num_qubits} qubits; these circuits need "
                f"{widest.num_qubits}"
            )
        if dynamic:
            check_dynamic_support(self.backend.target, self.backend.name)
            self._check_dynamic_options()
        target = self.backend.target
        self.say(
            f"choosing the layout on {self.backend.name} ({self.layout_method}, optimization "
            f"level {self.optimization_level})…"
        )
        self.layout = choose_layout(
            widest,
            target,
            optimization_level=self.optimization_level,
            seed=self.seed_transpiler,
            method=self.layout_method,
            device=self.backend.name,
        )
        from .fractional import fold_template, target_has_rzz

        if target_has_rzz(target):  # templates: RZZ angles folded on the host per row
            circuits = [fold_template(c) for c in circuits]
        # backend=: the backend's own translation plugin (dynamic circuits, fractional gates)
        manager = generate_preset_pass_manager(
            self.optimization_level,
            backend=self.backend,
            seed_transpiler=self.seed_transpiler,
            initial_layout=self.layout.initial,
        )
        self.say(
            f"transpiling {len(circuits)} templates for {self.backend.name} (optimization level "
            f"{self.optimization_level})…"
        )
        isa = list(manager.run(list(circuits)))
        self.measure_instruction = "measure"
        if dynamic and uses_measure_2(target, self.local):
            isa = to_mid_circuit_measure(isa, target)
            self.measure_instruction = "measure_2"
        self.physical_qubits = sorted({q for c in isa for q in active_qubits(c)})
        return isa

    def _check_dynamic_options(self) -> None:
        twirl = self.sampler_options.get("twirling", {})
        asked = [
            name
            for name, on in (
                ("twirling", twirl.get("enable_gates") or twirl.get("enable_measure")),
                (
                    "dynamical decoupling",
                    self.sampler_options.get("dynamical_decoupling", {}).get("enable"),
                ),
            )
            if on
        ]
        if asked:
            raise QRNNError(
                f"IBM runtime refuses {' and '.join(asked)} on dynamic circuits; drop --twirling/"
                "--dd or use --protocol replay"
            )

    def m3_system(self) -> Any:
        """The backend mthree calibrates on (its calibration jobs run outside the Session)."""
        return self.backend

    # ------------------------------------------------------------------ execution modes
    def open_mode(self) -> Any:
        if self._mode is None:
            self._mode = with_retries(
                lambda: self.boundary.open_mode(self.mode_kind, self.backend, self.mode_id),
                what=f"opening a {self.mode_kind.capitalize()}",
                base_delay=self.retry_delay,
                sleep=self._sleep,
            )
            self.mode_id = getattr(self._mode, "session_id", None) or self.mode_id
        return self._mode

    @property
    def batch_id(self) -> str | None:
        """Id of the open Session or Batch (kept under this name for older job records)."""
        if self._mode is not None:
            return getattr(self._mode, "session_id", None)
        return self.mode_id

    # ------------------------------------------------------------------ jobs
    def find_job(self, tags: Sequence[str]) -> str | None:
        """Id of a job already accepted with these tags (this process's jobs first)."""
        key = tuple(tags)
        if not key:
            return None
        if key in self._tagged:
            return self._tagged[key]
        ids = with_retries(
            lambda: self.boundary.find_jobs(key, self.backend.name),
            what="looking up jobs by tag",
            base_delay=self.retry_delay,
            sleep=self._sleep,
        )
        return ids[0] if ids else None

    def submit(
        self, pubs: Sequence[Pub], shots: int, tags: Sequence[str] = (), seed: int | None = None
    ) -> str:
        """Submit one Sampler job (all PUBs) in the Session/Batch; returns its id without waiting.

        A transient failure of the submission call may hide an accepted job: before each retry the
        job is looked up by its tags, so a retry never creates a duplicate. ``seed`` seeds local
        mode's simulator (IBM backends ignore it)."""
        if shots < 1:
            raise QRNNError(f"--shots must be >= 1, got {shots}")
        from .fractional import prepare_pubs

        mode = self.open_mode()
        ready = prepare_pubs(pubs, self.backend.target)
        tags = list(tags)

        def call() -> Any:
            return self.boundary.run_sampler(mode, ready, shots, self.sampler_options, tags, seed)

        def recover() -> Any:
            job_id = self.find_job(tags) if tags else None
            return job_id  # an id (str) marks a recovered job

        job = with_retries(
            call,
            what="job submission",
            base_delay=self.retry_delay,
            sleep=self._sleep,
            recover=recover,
        )
        if isinstance(job, str):  # recovered by tag after a lost reply
            return job
        job_id = job.job_id()
        self._jobs[job_id] = job
        if tags:
            self._tagged[tuple(tags)] = job_id
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
            lambda: self.boundary.job(job_id),
            what=f"looking up job {job_id}",
            base_delay=self.retry_delay,
            sleep=self._sleep,
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
                sleep=self._sleep,
            )
        except RuntimeJobFailureError as exc:
            raise QRNNError(
                f"job {job_id} failed on {self.backend.name} ({_first_line(exc)}); start the "
                "evaluation over with 'qrnn submit ... --restart'"
            ) from None
        return counts_from_result(result, job_id)

    def close(self) -> None:
        """Close the Session/Batch: no new jobs; submitted ones run to completion."""
        if self._mode is not None:
            try:
                self.boundary.close(self._mode)
            except Exception:  # closing is a courtesy; the jobs are already recorded
                pass
            self._mode = None


def uses_measure_2(target: Any, local: bool) -> bool:
    """Whether dynamic circuits get ``measure_2`` (MidCircuitMeasure) for their mid-circuit
    measurements: where the IBM target lists it, except in local mode (Aer does not know it)."""
    return "measure_2" in target.operation_names and not local


def to_mid_circuit_measure(isa: Sequence[QuantumCircuit], target: Any) -> list[QuantumCircuit]:
    """ISA circuits with their non-terminal measurements converted to ``measure_2``
    (qiskit-ibm-runtime's ``ConvertToMidCircuitMeasure``)."""
    from qiskit.transpiler import PassManager
    from qiskit_ibm_runtime.transpiler.passes import ConvertToMidCircuitMeasure

    return list(PassManager([ConvertToMidCircuitMeasure(target)]).run(list(isa)))


def counts_from_result(result: Any, job_id: str) -> list[list[Counts]]:
    """Counts per PUB and parameter row of a Sampler result. A circuit with several classical
    registers (the measured QRNN: one per step) has them joined in clbit order (the first
    register's bits rightmost, as Aer writes them without the spaces)."""
    out = []
    for pub_result in result:
        data = pub_result.data
        names = list(data.keys())
        if not names:
            raise QRNNError(f"job {job_id}: a circuit returned no classical register")
        bits = data[names[0]] if len(names) == 1 else pub_result.join_data()
        rows = bits.shape[0] if bits.shape else 1
        out.append([dict(bits.get_counts(loc=i if bits.shape else None)) for i in range(rows)])
    return out


__all__ = [
    "IBMExecutor",
    "LostJobError",
    "RuntimeBoundary",
    "SAVE_ACCOUNT_HINT",
    "counts_from_result",
    "is_transient",
    "open_service",
    "status_code",
    "transient_errors",
    "with_retries",
]

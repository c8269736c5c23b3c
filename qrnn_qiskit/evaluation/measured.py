"""Evaluation of a measured QRNN (``--model mqrnn``): its own dynamic circuit, one per sequence.

The measured model is defined by its dynamic circuit (``circuits.measured``), so its evaluation
runs exactly the trained circuits: the angle sets a(x), b(x) / c(x) come from the inputs alone and
are computed on the host; the bits select angles in real time. The circuits of all sequences share
their structure (same T, same conditions, the run's coupling angles α bound), so they are one
parametrized template (``measured_template``) with one parameter row per sequence: transpiled, and
on fake backends scheduled for idle relaxation, once per evaluation. One measurement setting (the
model fixes what is measured), independent jobs in a runtime Batch. Readouts are shot averages of
(−1)^{s_{t,r}} per step and measured qubit (plus the terminal ⟨Z_q⟩ with ``--final-z``); the head
runs on the host (``head_outputs``). ``exact`` is the trained model's own features
(``MeasuredCore``, the exact mixed-state simulation): on the ``exact`` target no circuit runs and
the readouts are those.

IBM jobs hold at most ``JOB_BROADCAST_BUDGET`` one-bit broadcasts; sequences (rows) are packed
into jobs by their conditions (``circuits.measured.measured_jobs``), one job (one PUB) per round of
the round loop — the rounds are independent (``dependent_rounds = False``): all are submitted
before any is awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from qiskit import ClassicalRegister

from ..backends.noisy import Counts
from ..circuits.measured import (
    broadcasts,
    measured_jobs,
    measured_template,
    shot_bits,
    template_row,
)
from ..errors import QRNNError
from ..models import MeasuredCore, SequenceModel
from .protocols import HardwareProtocol

SEMANTICS = "the trained measured model: its own dynamic circuit, bits averaged over shots"


class MeasuredProtocol(HardwareProtocol):
    """The measured QRNN's dynamic circuit (one template, a row per sequence), packed into jobs by
    ``budget``
    (one-bit broadcasts per job; None: one job). ``sampled=False`` (the exact target): no circuits,
    the readouts are the exact simulation's."""

    name = "dynamic"
    semantics = SEMANTICS
    dynamic = True
    dependent_rounds = False

    def __init__(
        self,
        model: SequenceModel,
        x: torch.Tensor,
        *,
        sampled: bool = True,
        budget: int | None = None,
    ) -> None:
        core = model.core
        if not isinstance(core, MeasuredCore):
            raise QRNNError("the measured protocol evaluates measured runs (--model mqrnn) only")
        super().__init__(model, x)
        self.core = core
        self.spec, self.measurement = core.spec, core.measurement
        self.final_z = core.config.final_z
        self.m, self.n = self.measurement.m, self.spec.n_qubits
        if (
            self.final_z
            and sampled
            and (model.head_mode != "last" or model.inputs.pad_id is not None)
        ):
            raise QRNNError(
                "this run reads ⟨Z⟩ at every step (--final-z) but one circuit per sequence "
                "measures it after the last step only; evaluate it with --target exact"
            )
        with torch.no_grad():
            self.features = model.embed(x)  # [K, T, E]
            self.exact, _ = core(self.features)  # the trained model's own features [K, T, F]
        self.dynamic = sampled
        self.budget = budget
        self.measure_instruction = "measure"
        self.jobs: list[list[int]] = []
        self.counts: list[int] = []
        self.rows = np.zeros((self.samples, 0))
        self.estimates = np.full((self.samples, self.steps, core.output_size), np.nan)
        self._done: set[int] = set()
        if not sampled:
            self.estimates = self.exact.double().numpy().copy()
            return
        # one template for every sequence (same T, same conditions; only the angles differ):
        # transpiled and scheduled once; a sequence is one parameter row of it
        with torch.no_grad():
            sets = core.angle_sets(self.features.to(core.controller.out.weight.dtype))
            alphas = core.alphas()
        self.rows = np.stack([template_row(a) for a in sets.double().numpy()])  # [K, T·A·P]
        circuit = measured_template(
            self.spec,
            self.measurement,
            self.steps,
            None if alphas is None else alphas.tolist(),
            name="mqrnn",
        )
        if self.final_z:  # terminal projective readout of the data register (last step)
            z = ClassicalRegister(self.n, "z")
            circuit.add_register(z)
            circuit.measure(circuit.qregs[0], z)
        self.templates = [circuit]
        self.counts = [broadcasts(circuit)] * self.samples  # per sequence (one circuit each)
        describe = (
            f"T = {self.steps}, {self.measurement.feedforward} feedforward of "
            f"{self.measurement.bits} bit(s)"
        )
        self.jobs = (
            measured_jobs(self.counts, budget, describe)
            if budget is not None
            else [list(range(self.samples))]
        )

    @property
    def n_rounds(self) -> int:
        return len(self.jobs)

    def schedule(self) -> list[list[tuple[int, int]]]:
        return [[(0, len(job))] for job in self.jobs]

    def round_pubs(self, r: int) -> list[tuple[int, np.ndarray | None]]:
        """One PUB per job: the template with the rows of the job's sequences."""
        return [(0, self.rows[self.jobs[r]])]

    def configure(self, isa: Sequence, executor: Any) -> None:
        """Record which measurement instruction the ISA circuits use (``measure_2`` where the
        executor converted mid-circuit measurements)."""
        if any("measure_2" in c.count_ops() for c in isa):
            self.measure_instruction = "measure_2"

    def absorb(self, r: int, counts: Sequence[Sequence[Counts]]) -> None:
        t, m, n = self.steps, self.m, self.n
        width = t * m + (n if self.final_z else 0)
        for j, i in enumerate(self.jobs[r]):
            acc, total = np.zeros(width), 0.0
            for key, count in counts[0][j].items():
                acc += count * (1.0 - 2.0 * shot_bits(key, width))
                total += count
            signs = acc / total
            self.estimates[i, :, :m] = signs[: t * m].reshape(t, m)
            if self.final_z:  # measured after the last step only; earlier steps: not read
                self.estimates[i, :, m:] = self.exact[i, :, m:].double().numpy()
                self.estimates[i, -1, m:] = signs[t * m :]
        self._done.add(r)

    def readouts(self) -> np.ndarray:
        if len(self._done) != self.n_rounds:
            raise RuntimeError("the measured protocol's jobs have not all run yet")
        return self.estimates

    def details(self) -> dict:
        return {
            "model": "mqrnn",
            "sampled": bool(self.templates),
            "measurement": self.measurement.kind,
            "feedforward": self.measurement.feedforward,
            "feedforward_bits": self.measurement.bits,
            "measured_qubits": list(self.measurement.qubits),
            "final_z": self.final_z
            and "the terminal ⟨Z⟩ is measured after the last step only; the head reads that step "
            "(earlier steps' ⟨Z⟩ columns are the exact model's)",
            "measurement_instruction": self.measure_instruction if self.templates else None,
            "broadcasts_per_circuit": self.counts,
            "job_broadcast_budget": self.budget if self.templates else None,
            "jobs": self.jobs,
        }

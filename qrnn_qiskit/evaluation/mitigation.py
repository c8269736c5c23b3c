"""In-loop mitigation of replay readouts: ESP rescale, empirical λ from Clifford twins, and M3.

Under the calibrated noise of IBM (fake) backends a replay readout behaves like a contraction
z_t → λ_t·z_t of the noiseless one, with λ_t close to the estimated success probability (ESP) of
the transpiled prefix circuit (backends.layout). Dividing the estimate by λ_t *inside* the replay
loop — before the controller sees it — costs no shots and keeps the controller on the trained
trajectory. The rescale assumes Pauli-like (twirled) noise; real devices give it under twirling.

Methods (``--mitigate``, combinable with commas):

* ``esp``: λ per step and measurement setting from the ISA template and the target's calibrations.
  Without ``m3`` it includes the measurement errors; with ``m3`` only the gates.
* ``twins``: λ per step and setting measured on near-Clifford twins: ``--twins`` extra parameter
  rows per setting and round whose angles are those of real rows snapped to multiples of π/2. Their
  noiseless readouts are exact (computed on the host), so λ = Σ z·z̄ / Σ z̄² over their non-zero
  readouts. Costs twins/samples more circuits.
* ``esp,twins``: the ESP shrink calibrated by the twins — one factor per setting, pooled over all
  rounds so far (low variance; it corrects what ESP misses, e.g. relaxation that spares Z).
* ``m3``: measurement-error mitigation of the counts with ``mthree`` (calibration circuits on the
  same qubits, once per evaluation).

``auto`` (the default) is ``esp`` on noisy targets (aer-noisy, ibm) for the replay protocol and
nothing otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..backends.layout import shrink_table
from ..backends.noisy import Counts
from ..errors import QRNNError
from ..models import SequenceModel
from .config import parse_mitigation
from .protocols import ReplayProtocol

SHRINK_FLOOR = 0.05  # below this a rescale would only amplify noise: λ is clamped here
TWIN_PRIOR = 4.0  # esp+twins: pseudo-readouts (λ·z̄² units) pulling the correction towards 1


def make_replay(config: Any, model: SequenceModel, x: torch.Tensor) -> ReplayProtocol:
    """The replay protocol of ``config``: mitigated when ``--mitigate`` asks for it."""
    methods = parse_mitigation(config.mitigate, config.target, "replay")
    if methods:
        return MitigatedReplay(model, x, methods, config.twins)
    return ReplayProtocol(model, x)


def snap_clifford(angles: np.ndarray) -> np.ndarray:
    """Angles rounded to the nearest multiple of π/2 (RY, RZ, RZZ become Clifford)."""
    return np.round(np.asarray(angles) / (math.pi / 2)) * (math.pi / 2)


class MitigatedReplay(ReplayProtocol):
    """The replay protocol with readouts rescaled (and counts corrected) inside the round loop.

    ``configure(isa, executor)`` must run after the templates are transpiled; ``absorb`` then
    stores raw and mitigated estimates and feeds the mitigated ones to the controller.
    """

    def __init__(
        self, model: SequenceModel, x: torch.Tensor, methods: Sequence[str], twins: int = 8
    ) -> None:
        super().__init__(model, x)
        self.methods = tuple(methods)
        self.twins = int(twins) if "twins" in self.methods else 0
        if "twins" in self.methods and self.twins < 1:
            raise QRNNError(f"--twins must be >= 1 with --mitigate twins, got {twins}")
        self.shrink: np.ndarray | None = None  # [T, R] predicted λ per step and readout (esp)
        self.esp_total: np.ndarray | None = None  # [T, S] ESP incl. measurement, for the report
        self.esp_gates: np.ndarray | None = None  # [T, S] ESP of the gates only
        self.m3: Any = None
        self.m3_qubits: list[list[int]] = []  # per template: physical qubit of clbit c
        self.raw: list[np.ndarray] = []  # unmitigated estimates per round [K, R]
        self.lambdas: list[np.ndarray] = []  # λ used per round [R]
        self.twin_rows: list[np.ndarray] = []  # per round: twin parameter rows [W, (r+1)·P]
        self.twin_exact: list[np.ndarray] = []  # per round: their noiseless readouts [W, R]
        self._pool: np.ndarray | None = None  # esp+twins: pooled Σ z·z̄ and Σ λ·z̄² per setting

    # ---------------------------------------------------------------- configuration
    def configure(self, isa: Sequence, executor: Any) -> None:
        """Compute ESP shrinks from the ISA templates and set up M3 on the executor's device."""
        from ..backends.layout import circuit_esp

        target = executor.calibration_target
        if target is not None:
            name = executor.description
            esp = [
                [
                    circuit_esp(isa[self.template_index(t, s)], target, device=name)
                    for s in range(len(self.settings))
                ]
                for t in range(1, self.steps + 1)
            ]
            self.esp_total = np.array([[e.total for e in row] for row in esp])
            self.esp_gates = np.array([[e.gates for e in row] for row in esp])
            self.shrink = shrink_table(
                self.spec,
                isa,
                target,
                self.steps,
                self.settings,
                self.assignment,
                measure="m3" not in self.methods,  # M3 already undoes readout errors
                device=name,
            )
        elif "esp" in self.methods:
            raise QRNNError(
                f"--mitigate esp needs calibrated gate errors; {executor.description} has none "
                "(use a noisy target, or --mitigate none/twins)"
            )
        if "m3" in self.methods:
            self._setup_m3(isa, executor)

    def _setup_m3(self, isa: Sequence, executor: Any) -> None:
        try:
            import mthree
            from mthree.utils import final_measurement_mapping
        except ImportError:
            raise QRNNError(
                "--mitigate m3 needs mthree: pip install 'qrnn-qiskit[mitigation]' (or mthree)"
            ) from None
        system = executor.m3_system()
        if system is None:
            raise QRNNError(f"--mitigate m3 cannot calibrate on {executor.description}")
        self.m3_qubits = []
        for circuit in isa:
            mapping = final_measurement_mapping(circuit)  # {clbit: qubit}
            self.m3_qubits.append([mapping[c] for c in range(len(mapping))])
        qubits = sorted({q for qs in self.m3_qubits for q in qs})
        self.m3 = mthree.M3Mitigation(system)
        self.m3.cals_from_system(qubits, shots=executor.m3_shots, async_cal=False)

    # ---------------------------------------------------------------- rounds
    def schedule(self) -> list[list[tuple[int, int]]]:
        return [
            [(index, rows + self.twins) for index, rows in round_] for round_ in super().schedule()
        ]

    def round_pubs(self, r: int) -> list[tuple[int, np.ndarray | None]]:
        pubs = super().round_pubs(r)
        if not self.twins:
            return pubs
        values = pubs[0][1]
        pick = [k % self.samples for k in range(self.twins)]
        rows = snap_clifford(values[pick])
        self.twin_rows.append(rows)
        self.twin_exact.append(self._exact_readouts(rows, r + 1))
        return [(index, np.concatenate([v, rows])) for index, v in pubs]

    def _exact_readouts(self, rows: np.ndarray, steps: int) -> np.ndarray:
        """Noiseless readouts after ``steps`` steps of the angle rows [W, steps·P] (engine)."""
        engine = self.core.engine
        p = self.spec.n_params
        with torch.no_grad():
            state = engine.initial_state(len(rows))
            z = None
            for t in range(steps):
                angles = torch.as_tensor(rows[:, t * p : (t + 1) * p], dtype=torch.float64)
                state, z = engine.step_readouts(state, angles, None)
        return z.double().numpy()

    def _correct_counts(self, template: int, counts: Sequence[Counts]) -> list[Counts]:
        qubits = self.m3_qubits[template]
        out = []
        for c in counts:
            quasi = self.m3.apply_correction(dict(c), qubits)
            out.append({k: float(v) for k, v in quasi.items()})
        return out

    def absorb(self, r: int, counts: Sequence[Sequence[Counts]]) -> None:
        k = self.samples
        counts = [list(per_setting) for per_setting in counts]
        if self.m3 is not None:
            counts = [
                self._correct_counts(self.template_index(r + 1, s), counts[s])
                for s in range(len(self.settings))
            ]
        twin_counts = [c[k:] for c in counts]
        super().absorb(r, [c[:k] for c in counts])
        raw = self.estimates[-1]
        lam = np.ones(len(self.labels))
        if self.twins and "esp" in self.methods:
            lam = self.shrink[r] * self._twin_calibration(r, twin_counts)
        elif self.twins:
            lam = self._twin_lambdas(r, twin_counts)[np.asarray(self.assignment)]
        elif self.shrink is not None and "esp" in self.methods:
            lam = self.shrink[r]
        lam = np.maximum(lam, SHRINK_FLOOR)
        mitigated = np.clip(raw / lam, -1.0, 1.0)
        self.raw.append(raw)
        self.lambdas.append(lam)
        self.estimates[-1] = mitigated
        self.z[-1] = torch.as_tensor(mitigated, dtype=self.features.dtype)

    def _twin_readouts(self, twin_counts: Sequence[Sequence[Counts]]) -> np.ndarray:
        from ..circuits.replay import readouts_from_counts

        return np.stack(
            [
                readouts_from_counts(
                    self.spec, [twin_counts[s][w] for s in range(len(self.settings))]
                )
                for w in range(self.twins)
            ]
        )  # [W, R]

    def _twin_calibration(self, r: int, twin_counts: Sequence[Sequence[Counts]]) -> np.ndarray:
        """esp+twins: a correction c [R] of the ESP shrink, per setting and pooled over this and
        all earlier rounds' twins (c = Σ z·z̄ / Σ λ_esp·z̄², z̄ the twins' exact readouts)."""
        noisy, exact = self._twin_readouts(twin_counts), self.twin_exact[r]
        predicted = self.shrink[r][None, :] * exact
        if self._pool is None:
            self._pool = np.zeros((2, len(self.settings)))
        assignment = np.asarray(self.assignment)
        for s in range(len(self.settings)):
            cols = assignment == s
            self._pool[0, s] += float((noisy[:, cols] * exact[:, cols]).sum())
            self._pool[1, s] += float((predicted[:, cols] * exact[:, cols]).sum())
        # a prior of TWIN_PRIOR pseudo-readouts at c = 1 keeps early, signal-poor rounds (few
        # twin readouts with z̄ ≠ 0) from swinging λ
        c = (self._pool[0] + TWIN_PRIOR) / (self._pool[1] + TWIN_PRIOR)
        return np.clip(c, 0.7, 1.3)[assignment]

    def _twin_lambdas(self, r: int, twin_counts: Sequence[Sequence[Counts]]) -> np.ndarray:
        from ..circuits.replay import readouts_from_counts

        noisy = np.stack(
            [
                readouts_from_counts(
                    self.spec, [twin_counts[s][w] for s in range(len(self.settings))]
                )
                for w in range(self.twins)
            ]
        )  # [W, R]
        exact = self.twin_exact[r]
        out = np.ones(len(self.settings))
        assignment = np.asarray(self.assignment)
        for s in range(len(self.settings)):
            cols = assignment == s
            zbar, z = exact[:, cols].ravel(), noisy[:, cols].ravel()
            keep = np.abs(zbar) > 0.5
            if keep.sum():
                out[s] = float(
                    np.clip((z[keep] * zbar[keep]).sum() / (zbar[keep] ** 2).sum(), 0, 1)
                )
            elif self.shrink is not None:
                out[s] = float(self.shrink[r, cols].mean())
        return out

    def extras(self) -> dict:
        """What the result records about the mitigation."""
        out: dict[str, Any] = {"methods": list(self.methods), "twins": self.twins}
        if self.lambdas:
            out["lambda"] = np.stack(self.lambdas).tolist()  # [T, R]
            raw = np.stack(self.raw, axis=1)
            out["raw_mean_error"] = float(np.abs(raw - self.exact.double().numpy()).mean())
            out["raw_readouts"] = raw.tolist()
        if self.esp_total is not None:
            out["esp"] = self.esp_total.tolist()
        return out


def replay_shrink(protocol: ReplayProtocol, isa: Sequence, executor: Any) -> dict | None:
    """{"esp": ESP per step (mean over settings), "esp_gates": its gate part, "shrink": the
    predicted readout shrink λ per step (mean over readouts; what --mitigate esp divides by)} of a
    replay evaluation from its ISA templates (None without calibrations)."""
    from ..backends.layout import circuit_esp

    target = executor.calibration_target
    if target is None or not isinstance(protocol, ReplayProtocol):
        return None
    esp, gates = [], []
    for t in range(1, protocol.steps + 1):
        values = [
            circuit_esp(isa[protocol.template_index(t, s)], target, device=executor.description)
            for s in range(len(protocol.settings))
        ]
        esp.append(float(np.mean([v.total for v in values])))
        gates.append(float(np.mean([v.gates for v in values])))
    shrink = shrink_table(
        protocol.spec,
        isa,
        target,
        protocol.steps,
        protocol.settings,
        protocol.assignment,
        device=executor.description,
    )
    return {"esp": esp, "esp_gates": gates, "shrink": shrink.mean(axis=1).tolist()}


__all__ = [
    "MitigatedReplay",
    "make_replay",
    "replay_shrink",
    "snap_clifford",
]

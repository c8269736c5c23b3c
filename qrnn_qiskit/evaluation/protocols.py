"""Hardware protocols for a trained QRNN: replay (faithful) and dynamic (hardware-native).

A protocol turns a model and K input sequences into circuit *templates* and, round by round, PUBs
``(template index, parameter rows)``; it absorbs each round's counts and finally yields readouts [K,
T, R]. Both run through the same round loop on every target (``runner``), so a replay on IBM
hardware can be submitted, interrupted and collected round by round.

* replay: round t runs the prefixes U(θ_t)…U(θ_1)|0⟩ in every measurement setting; θ_t comes from
  the controller fed with the readouts *estimated* at round t−1. This is the trained model, up to
  shot and device noise.
* dynamic: one round, one circuit per (sequence, setting) with mid-circuit measurements (of the data
  qubits for projective coupling, of ancillas for weak coupling) and if/else feedforward
  (``circuits.dynamic``). The angles θ̄_t are those of the noiseless trajectory; the controller is
  linearised around it: a measured ±1 outcome s_r of readout r shifts angle k by J_kr·(s_r/κ − z̄_r),
  J = ∂θ_t/∂z_{t−1}, κ the coupling gain, for the ``corrections`` largest |J_kr| per step. This is a
  different (stochastic, measured) recurrent model; its readouts are estimated from the mid-circuit
  bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..backends.noisy import Counts
from ..circuits.dynamic import (
    Correction,
    coupling_gain,
    dynamic_circuit,
    resolve_corrections,
    step_bits,
    validate_coupling,
)
from ..circuits.replay import (
    label_support,
    measured_prefix,
    measurement_settings,
    readouts_from_counts,
)
from ..circuits.spec import readout_labels
from ..errors import QRNNError
from ..models import MeasuredCore, QRNNCell, SequenceModel


def head_outputs(model: SequenceModel, readouts: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The model's head applied to readouts [K, T, R] of inputs ``x`` exactly as ``SequenceModel``
    does it (padded sequences are read at their last real step)."""
    return model.apply_head(readouts.to(next(model.head.parameters()).dtype), x)


class HardwareProtocol:
    """Rounds of PUBs over circuit templates; subclasses fill ``templates`` and ``exact`` and
    implement the rounds.

    The generic part of every protocol (coherent QRNN: :class:`CoherentProtocol`; the measured QRNN:
    ``evaluation.measured.MeasuredProtocol``): the model, the inputs ``x`` [K, T], ``samples`` K,
    ``steps`` T, ``templates`` and ``exact`` (the trained model's own readouts [K, T, R], compared
    with the estimated ones in result.json)."""

    name = ""
    # what result.json says the readouts mean
    semantics = ""
    dynamic = False  # circuits with mid-circuit measurements and feedforward
    dependent_rounds = False  # round r+1's circuits depend on round r's counts (a runtime Session)

    def __init__(self, model: SequenceModel, x: torch.Tensor) -> None:
        self.model = model
        self.x = x
        self.samples, self.steps = x.shape[0], x.shape[1]
        self.templates: list = []
        self.exact: torch.Tensor = torch.zeros(0)

    @property
    def n_rounds(self) -> int:
        raise NotImplementedError

    def schedule(self) -> list[list[tuple[int, int]]]:
        """Per round, the (template index, number of parameter rows) it will run — known before
        running."""
        raise NotImplementedError

    def round_pubs(self, r: int) -> list[tuple[int, np.ndarray | None]]:
        raise NotImplementedError

    def absorb(self, r: int, counts: Sequence[Sequence[Counts]]) -> None:
        raise NotImplementedError

    def readouts(self) -> np.ndarray:
        raise NotImplementedError

    def configure(self, isa: Sequence, executor: Any) -> None:
        """Called once the templates are transpiled (``isa``), before any round runs: a protocol
        that needs the ISA circuits or the executor's calibrations reads them here."""

    def extras(self) -> dict | None:
        """What the protocol adds to result.json under "mitigation" (None: nothing)."""
        return None

    def details(self) -> dict | None:
        """What the protocol adds to result.json under "protocol_details" (None: nothing)."""
        return None


class CoherentProtocol(HardwareProtocol):
    """The part replay and dynamic share for a coherent QRNN (a ``QRNNCell`` core): its spec, the
    measurement settings and readout labels, and the exact readouts ``core(features)``."""

    def __init__(self, model: SequenceModel, x: torch.Tensor) -> None:
        core = model.core
        if isinstance(core, MeasuredCore):
            raise QRNNError(
                "a measured run has no replay: its model is its dynamic circuit; use --protocol "
                "dynamic (default for it)"
            )
        if not isinstance(core, QRNNCell):
            raise QRNNError(
                "only QRNN runs have circuits to evaluate on hardware (this run is a classical "
                "model)"
            )
        if core.config.forget_every:
            raise QRNNError(
                "this run resets a qubit every "
                f"{core.config.forget_every} steps (--forget-every); the hardware circuits of "
                "the forgetting step are not built yet: evaluate it noiselessly with qrnn report"
            )
        super().__init__(model, x)
        self.core = core
        self.spec = core.config.spec
        self.settings, self.assignment = measurement_settings(self.spec)
        self.labels = readout_labels(self.spec)
        with torch.no_grad():
            self.features = model.embed(x)  # [K, T, E]
            self.exact, _ = core(self.features)  # noiseless readouts [K, T, R]


class ReplayProtocol(CoherentProtocol):
    """Prefix circuits re-prepared each step; θ_t from the readouts estimated at step t−1."""

    name = "replay"
    semantics = "the trained model: prefixes re-prepared each step, readouts estimated from shots"
    dependent_rounds = True

    def __init__(self, model: SequenceModel, x: torch.Tensor) -> None:
        super().__init__(model, x)
        self.templates = [
            measured_prefix(self.spec, t, s)
            for t in range(1, self.steps + 1)
            for s in self.settings
        ]
        with torch.no_grad():
            _, z0 = self.core.initial_state(self.samples)
        self.z = [z0.to(self.features.dtype)]
        self.angles: list[torch.Tensor] = []
        self.estimates: list[np.ndarray] = []

    @property
    def n_rounds(self) -> int:
        return self.steps

    def template_index(self, step: int, setting: int) -> int:
        return (step - 1) * len(self.settings) + setting

    def schedule(self) -> list[list[tuple[int, int]]]:
        return [
            [(self.template_index(t, s), self.samples) for s in range(len(self.settings))]
            for t in range(1, self.steps + 1)
        ]

    def round_pubs(self, r: int) -> list[tuple[int, np.ndarray | None]]:
        if r != len(self.angles) or r != len(self.estimates):
            raise RuntimeError(
                f"replay rounds must run in order (asked for {r}, at {len(self.angles)})"
            )
        with torch.no_grad():
            theta = self.core.angles(self.features[:, r], self.z[-1])
        self.angles.append(theta.detach().to(torch.float64))
        values = torch.cat(self.angles, dim=1).numpy()  # [K, (r+1)·P]
        return [(self.template_index(r + 1, s), values) for s in range(len(self.settings))]

    def absorb(self, r: int, counts: Sequence[Sequence[Counts]]) -> None:
        z = np.stack(
            [
                readouts_from_counts(self.spec, [counts[s][k] for s in range(len(self.settings))])
                for k in range(self.samples)
            ]
        )
        self.estimates.append(z)
        self.z.append(torch.as_tensor(z, dtype=self.features.dtype))

    def absorb_exact(self, z: torch.Tensor) -> None:
        """Continue with given readouts [K, R] instead of estimates (export of the noiseless
        trajectory)."""
        self.estimates.append(z.double().numpy())
        self.z.append(z.to(self.features.dtype))

    def readouts(self) -> np.ndarray:
        return np.stack(self.estimates, axis=1)

    def angles_used(self) -> np.ndarray:
        return torch.stack(self.angles, dim=1).numpy()  # [K, T, P]


class DynamicProtocol(CoherentProtocol):
    """One circuit per (sequence, setting) with mid-circuit measurement, reset and if/else
    feedforward."""

    name = "dynamic"
    semantics = (
        "a different, measured model: one-shot mid-circuit readouts and linearised if/else "
        "feedforward"
    )
    dynamic = True

    def __init__(
        self, model: SequenceModel, x: torch.Tensor, coupling: str = "cnot", corrections: int = -1
    ) -> None:
        super().__init__(model, x)
        self.coupling = validate_coupling(coupling)
        self.gain = coupling_gain(self.coupling)
        self.max_corrections = resolve_corrections(self.coupling, corrections)
        self.angles, jacobians = self._linearise()
        self.corrections: list[list[Correction]] = []
        for k in range(self.samples):
            for s in range(len(self.settings)):
                chosen = self._choose(jacobians[k], k, s)
                self.corrections.append(chosen)
                self.templates.append(
                    dynamic_circuit(
                        self.spec,
                        self.angles[k],
                        self.settings[s],
                        self.coupling,
                        chosen,
                        name=f"dynamic_{k}_{self.settings[s]}",
                    )
                )
        self.estimates: np.ndarray | None = None

    def _linearise(self) -> tuple[np.ndarray, np.ndarray]:
        """θ̄ [K, T, P] along the noiseless trajectory and J = ∂θ_t/∂z_{t−1} [K, T, P, R]."""
        with torch.no_grad():
            _, z0 = self.core.initial_state(self.samples)
        z_prev = torch.cat(
            [z0.to(self.features.dtype)[:, None], self.exact[:, :-1].to(self.features.dtype)], dim=1
        )
        angles = np.zeros((self.samples, self.steps, self.spec.n_params))
        jac = np.zeros((self.samples, self.steps, self.spec.n_params, len(self.labels)))
        for t in range(self.steps):
            x_t = self.features[:, t]
            z = z_prev[:, t].clone()
            with torch.no_grad():
                angles[:, t] = self.core.angles(x_t, z).double().numpy()
            if self.core.config.feedback and t > 0:
                for k in range(self.samples):
                    x_k = x_t[k : k + 1]
                    j = torch.autograd.functional.jacobian(
                        lambda zz, x_k=x_k: self.core.angles(x_k, zz[None])[0], z[k]
                    )
                    jac[k, t] = j.double().numpy()
        return angles, jac

    def _choose(self, jac: np.ndarray, k: int, s: int) -> list[Correction]:
        """The ``corrections`` largest |J_kr| per step over single-qubit readouts measured in
        setting s."""
        candidates = [
            (r, next(iter(label_support(self.labels[r]))))
            for r, a in enumerate(self.assignment)
            if a == s and len(label_support(self.labels[r])) == 1
        ]
        chosen = []
        for t in range(1, self.steps):
            zbar = self.exact[k, t - 1].double().numpy()
            entries = [
                (abs(jac[t, a, r]), a, r, q)
                for r, q in candidates
                for a in range(self.spec.n_params)
            ]
            entries.sort(key=lambda e: -e[0])
            for magnitude, a, r, q in entries[: self.max_corrections]:
                if magnitude == 0:
                    break
                # s/κ estimates ⟨B⟩ without bias (E[s] = κ·⟨B⟩); bit 1 is s = −1, bit 0 is s = +1
                chosen.append(
                    Correction(
                        t,
                        a,
                        q,
                        float(jac[t, a, r] * (-1 / self.gain - zbar[r])),
                        float(jac[t, a, r] * (1 / self.gain - zbar[r])),
                    )
                )
        return chosen

    @property
    def n_rounds(self) -> int:
        return 1

    def schedule(self) -> list[list[tuple[int, int]]]:
        return [[(i, 1) for i in range(len(self.templates))]]

    def round_pubs(self, r: int) -> list[tuple[int, np.ndarray | None]]:
        return [(i, None) for i in range(len(self.templates))]

    def absorb(self, r: int, counts: Sequence[Sequence[Counts]]) -> None:
        n = self.spec.n_qubits
        out = np.zeros((self.samples, self.steps, len(self.labels)))
        for k in range(self.samples):
            for s in range(len(self.settings)):
                signs, weights = step_bits(counts[k * len(self.settings) + s][0], self.steps, n)
                for r_, a in enumerate(self.assignment):
                    if a != s:
                        continue
                    qubits = sorted(label_support(self.labels[r_]))
                    product = np.prod(signs[:, :, qubits], axis=2)  # [outcomes, T]
                    out[k, :, r_] = weights @ product / self.gain ** len(qubits)
        self.estimates = out

    def readouts(self) -> np.ndarray:
        if self.estimates is None:
            raise RuntimeError("the dynamic round has not run yet")
        return self.estimates

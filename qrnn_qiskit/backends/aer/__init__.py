"""Exact Aer statevector executors of the QRNN: a whole-sequence runner and a trainable (autograd)
engine.

* :class:`AerSequenceRunner`: given the angles of every step [B, T, P], runs the simulation-form
  sequence circuit (``save_expectation_value`` of every readout after every step) on
  ``AerSimulator(method= "statevector")`` in ONE ``run()`` call (B parameter bindings) and returns
  the readouts [B, T, R].
* :class:`AerEstimatorEngine`: the quantum half of a QRNN computed by qiskit-machine-learning
  ``EstimatorQNN`` + ``TorchConnector`` over Aer's ``EstimatorV2``, with the interface of
  :class:`~qrnn_qiskit.backends.StatevectorEngine`, so ``QRNNCore`` runs on it unchanged. Its
  "state" is the classical description of the quantum state: the angle history [B, t·P]. The readout
  z_t of a history of t steps is an ``EstimatorQNN`` over the prefix circuit U(θ_t)…U(θ_1)|0⟩, one
  per t. A forward pass over T steps therefore simulates Σ_t t = T(T+1)/2 step circuits per sample,
  and its parameter-shift gradient 2·t·P shifted copies of every prefix: O(T³·P) step circuits per
  sample.
* :class:`BroadcastParamShiftGradient`: the exact parameter-shift rule as an ``EstimatorQNN``
  gradient strategy that sends all shifted circuits of a batch as ONE broadcast pub per prefix
  (qiskit-machine- learning's ``ParamShiftEstimatorGradient`` sends one pub, hence one Aer run, per
  sample × observable × shifted angle).
"""

from ..memory import available_memory_bytes, check_memory, statevector_bytes
from .cost import AerCost, AerTiming, calibrate, estimate_cost
from .engine import DEFAULT_LIMIT_HOURS, AerEstimatorEngine
from .gradient import BroadcastParamShiftGradient
from .requirements import aer_estimator, require_aer, require_qml
from .sequence import AerSequenceRunner

__all__ = [
    "DEFAULT_LIMIT_HOURS",
    "AerCost",
    "AerEstimatorEngine",
    "AerSequenceRunner",
    "AerTiming",
    "BroadcastParamShiftGradient",
    "aer_estimator",
    "available_memory_bytes",
    "calibrate",
    "check_memory",
    "estimate_cost",
    "require_aer",
    "require_qml",
    "statevector_bytes",
]

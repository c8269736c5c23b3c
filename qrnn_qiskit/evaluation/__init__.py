"""Evaluation of trained models: run reports (``report``) and the hardware pipeline — replay and
dynamic protocols (``protocols``), resource reports (``resources``), the resumable round loop with
IBM job records (``runner``), circuit export (``export``) and the noiseless-vs-noisy comparison
(``compare``).

Submodules are imported directly (``from qrnn_qiskit.evaluation.runner import evaluate``) so that
the CLI does not pay for Qiskit imports it does not use.
"""

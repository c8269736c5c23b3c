"""Render the API reference with pdoc: ``python docs/build_api.py [OUT]`` (``make docs``; default
OUT: docs/api, which git ignores). The public modules are listed in ``MODULES``."""

from __future__ import annotations

import sys
from pathlib import Path

# the Python API first, then the layers it is built on (docs/architecture.md)
MODULES = [
    "qrnn_qiskit",
    "qrnn_qiskit.nn",
    "qrnn_qiskit.errors",
    "qrnn_qiskit.models",
    "qrnn_qiskit.models.qrnn",
    "qrnn_qiskit.models.controller",
    "qrnn_qiskit.models.noise",
    "qrnn_qiskit.models.sequence",
    "qrnn_qiskit.circuits",
    "qrnn_qiskit.circuits.spec",
    "qrnn_qiskit.backends",
    "qrnn_qiskit.backends.base",
    "qrnn_qiskit.backends.aer",
    "qrnn_qiskit.backends.noisy",
    "qrnn_qiskit.backends.targets",
    "qrnn_qiskit.training",
    "qrnn_qiskit.training.config",
    "qrnn_qiskit.training.optim",
    "qrnn_qiskit.training.trainer",
    "qrnn_qiskit.evaluation",
]
# packages whose modules are internals (CLI glue, kernels, dataset loaders) are left out
EXCLUDE = [
    "!qrnn_qiskit.cli",
    "!qrnn_qiskit.demo",
    "!qrnn_qiskit.*.cli",
    "!qrnn_qiskit.backends.statevector.kernels_*",
    "!qrnn_qiskit.backends.statevector.native*",
]


def build(out: Path) -> list[Path]:
    """Write the HTML reference into ``out``; return the pages written."""
    import pdoc
    import pdoc.render

    import qrnn_qiskit

    # the package exports its API lazily (module __getattr__); pdoc reads the module's __dict__
    for name in qrnn_qiskit.__all__:
        setattr(qrnn_qiskit, name, getattr(qrnn_qiskit, name))
    pdoc.render.configure(docformat="restructuredtext", search=True, show_source=False)
    pdoc.pdoc(*MODULES, *EXCLUDE, output_directory=out)
    return sorted(out.rglob("*.html"))


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "docs" / "api"
    pages = build(target)
    print(f"{len(pages)} pages in {target}")

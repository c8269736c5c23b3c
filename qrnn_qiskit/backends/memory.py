"""Memory guards: refuse, before allocating, work whose state vectors do not fit in memory."""

from __future__ import annotations

import os

from ..errors import QRNNError

STATE_BYTES_PER_AMPLITUDE = 16  # complex128


def available_memory_bytes() -> int:
    """Memory the OS reports as available (``MemAvailable``), or total physical memory as a
    fallback."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def statevector_bytes(n_qubits: int, batch: int, copies: int = 1) -> int:
    """Estimated simulator memory: ``copies`` complex128 state vectors (2^n · 16 bytes) per
    sample."""
    return (1 << n_qubits) * STATE_BYTES_PER_AMPLITUDE * batch * copies


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def check_memory(
    n_qubits: int,
    batch: int,
    *,
    what: str = "aer",
    available: int | None = None,
    copies: int = 1,
) -> int:
    """Raise :class:`QRNNError` when ``copies`` × 2^n·16 bytes × batch exceeds the available
    memory; return the estimate."""
    need = statevector_bytes(n_qubits, batch, copies)
    have = available_memory_bytes() if available is None else available
    if need > have:
        per = f"{copies} × 2^{n_qubits}·16 bytes" if copies > 1 else f"2^{n_qubits}·16 bytes"
        raise QRNNError(
            f"{what}: {n_qubits} qubits × batch {batch} needs about {format_bytes(need)} of "
            f"state vectors ({per} per sample) but only {format_bytes(have)} is available; "
            "use fewer qubits or a smaller batch"
        )
    return need

"""ESP and CZ count of a 10-step replay prefix (Z setting) of a 4-qubit, 2-layer model at
optimization level 1, level 3, and with the pinned best-ESP layout, on three Heron fake backends.

    PYTHONPATH=. python experiments/layout_probe.py
"""

from __future__ import annotations

from qiskit.transpiler import generate_preset_pass_manager

from qrnn_qiskit.backends.layout import choose_layout, circuit_esp
from qrnn_qiskit.backends.noisy import fake_backend
from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.circuits.replay import measured_prefix as prefix_circuit


def main() -> None:
    print("| entangler | backend | level 1: ESP, CZ | level 3: ESP, CZ | pinned esp layout |")
    print("|---|---|---|---|---|")
    for entangler in ("cz_chain", "cx_ring"):
        circuit = prefix_circuit(QRNNSpec(4, 2, entangler), 10, "ZZZZ")
        for name in ("fake_fez", "fake_kingston", "fake_torino"):
            target = fake_backend(name).target
            cells = []
            for level in (1, 3):
                manager = generate_preset_pass_manager(level, target=target, seed_transpiler=0)
                isa = manager.run(circuit)
                cells.append(
                    f"{circuit_esp(isa, target).total:.3f}, {isa.count_ops().get('cz', 0)}"
                )
            layout = choose_layout(circuit, target, method="esp")
            isa = generate_preset_pass_manager(
                3, target=target, seed_transpiler=0, initial_layout=layout.initial
            ).run(circuit)
            cells.append(f"{circuit_esp(isa, target).total:.3f}")
            print(f"| {entangler} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

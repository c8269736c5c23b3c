import pytest

from qrnn_qiskit.circuits import QRNNSpec, readout_labels, step_circuit


def test_step_circuit_layout_and_parameter_order():
    spec = QRNNSpec(3, 2, "cx_ring", "xyz")
    qc = step_circuit(spec)
    assert spec.n_params == 12 == qc.num_parameters
    assert [p.name for p in qc.parameters] == [f"θ[{i}]" for i in range(12)]
    names = [(ins.operation.name, [qc.find_bit(q).index for q in ins.qubits]) for ins in qc.data]
    layer = [
        ("ry", [0]),
        ("ry", [1]),
        ("ry", [2]),
        ("rz", [0]),
        ("rz", [1]),
        ("rz", [2]),
        ("cx", [0, 1]),
        ("cx", [1, 2]),
        ("cx", [2, 0]),
    ]
    assert names == layer + layer
    first_rz = qc.data[3].operation.params[0]
    assert first_rz.name == "θ[3]"


@pytest.mark.parametrize(
    "n,entangler,edges",
    [
        (1, "cx_ring", []),
        (2, "cz_ring", [(0, 1)]),
        (3, "cz_ring", [(0, 1), (1, 2), (2, 0)]),
        (4, "cx_ladder", [(0, 1), (1, 2), (2, 3)]),
    ],
)
def test_entangler_edges(n, entangler, edges):
    assert QRNNSpec(n, 1, entangler).edges() == edges


def test_readout_sets():
    assert readout_labels(QRNNSpec(3, 1, readouts="z")) == ["IIZ", "IZI", "ZII"]
    assert readout_labels(QRNNSpec(3, 1, "cx_ladder", "zz")) == ["IIZ", "IZI", "ZII", "IZZ", "ZZI"]
    assert len(readout_labels(QRNNSpec(4, 1))) == 12
    assert readout_labels(QRNNSpec(2, 1, readouts=["XY", "ZI"])) == ["XY", "ZI"]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"n_qubits": 0}, "n_qubits"),
        ({"n_qubits": 25}, "n_qubits"),
        ({"n_qubits": 2, "layers": 0}, "layers"),
        ({"n_qubits": 2, "entangler": "swap"}, "entangler"),
        ({"n_qubits": 2, "readouts": "xx"}, "readouts"),
        ({"n_qubits": 2, "readouts": ("XYZ",)}, "readouts"),
        ({"n_qubits": 2, "readouts": ()}, "readouts"),
    ],
)
def test_bad_specs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        QRNNSpec(**kwargs)


def test_spec_is_frozen_and_round_trips():
    spec = QRNNSpec(4, 3, "cz_ring", ("XXII", "ZIIZ"))
    with pytest.raises(AttributeError):
        spec.layers = 1  # type: ignore[misc]
    assert QRNNSpec.from_dict(spec.to_dict()) == spec

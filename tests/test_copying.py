import math

import numpy as np
import pytest

from qrnn_qiskit.data.copying import BLANK, MARKER, copying_batch, memoryless_baseline


def test_copying_layout_follows_data_md():
    x, y = copying_batch(np.random.default_rng(0), 4, delay=7)
    assert x.shape == y.shape == (4, 27)
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    assert (
        (x[:, 10:17] == BLANK).all() and (x[:, 17] == MARKER).all() and (x[:, 18:] == BLANK).all()
    )
    assert (y[:, :17] == BLANK).all()
    np.testing.assert_array_equal(y[:, 17:], x[:, :10])


def test_memoryless_baseline():
    assert memoryless_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    assert round(memoryless_baseline(100), 3) == 0.173


def test_bad_arguments():
    with pytest.raises(ValueError, match="delay"):
        copying_batch(np.random.default_rng(0), 2, 0)
    with pytest.raises(ValueError, match="batch"):
        copying_batch(np.random.default_rng(0), 0, 3)


def test_markdown_table_aligns_columns():
    from qrnn_qiskit.formatting import markdown_table

    assert markdown_table([("a", "bb"), ("ccc", 1)]).splitlines() == [
        "| a   | bb |",
        "|-----|----|",
        "| ccc | 1  |",
    ]
    with pytest.raises(ValueError):
        markdown_table([])

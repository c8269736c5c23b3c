"""``qrnn bench SPEC`` (qrnn_qiskit/sweep/bench*.py): a tiny spec end to end in-process (trials run
in this process, one torch thread, as tests/test_sweep.py's in-process worker), the plan of a dry
run, one-line errors for bad specs before anything runs, and the shipped specs."""

import json
from pathlib import Path

import pytest

from qrnn_qiskit.cli import main

pytest.importorskip("optuna", reason="make test installs it (the sweep extra)")

ROOT = Path(__file__).resolve().parents[1]
TINY = """
[bench]
name = "tiny"
seeds = [0, 1]

[budget]
steps = 20
threads = 1

[tuning]
lr = [3e-3]

[train]
batch_size = 8
eval_every = 10
eval_size = 32

[tasks.copying]
delay = 2

[models.qrnn]
qubits = 2
layers = 1
width = 8

[models.lstm]
"""


def spec(tmp_path, text=TINY, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_tiny_bench_runs_end_to_end_with_one_budget_for_every_model(tmp_path, capsys):
    root = tmp_path / "bench"
    assert main(["bench", spec(tmp_path), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    table = (root / "table.md").read_text()
    assert table.strip() in out
    # every run of every model got the same budget: 20 steps on 1 thread, the one lr
    configs = [
        json.loads(p.read_text()) for p in sorted(root.glob("copying/*/trial-*/config.json"))
    ]
    assert len(configs) == 4  # 2 models × 1 lr × 2 seeds
    for record in configs:
        config = record.get("config", record)
        assert config["optim"]["steps"] == 20 and config["optim"]["lr"] == 3e-3
        assert config["run"]["threads"] == 1 and config["optim"]["batch_size"] == 8
    seeds = sorted((c.get("config", c)["model"]["kind"], c.get("config", c)["run"]["seed"])
                   for c in configs)  # fmt: skip
    assert seeds == [("lstm", 0), ("lstm", 1), ("qrnn", 0), ("qrnn", 1)]
    assert "params (all, embeddings in)" in table and "params (embeddings out)" in table
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith(("| qrnn ", "| lstm "))}  # fmt: skip
    assert set(rows) == {"qrnn", "lstm"}
    for cells in rows.values():
        steps, best, spread, n = cells[6], cells[9], cells[10], cells[13]
        assert steps == "20" and n.strip(" |") == "2"
        assert " ± " in best and "%" in best  # mean ± std over the 2 seeds
        assert "–" in spread  # min–max
    assert "chrono (horizon 22)" in rows["lstm"][2]  # the init is recorded
    assert "init scale" in rows["qrnn"][2]
    for name in ("steps", "seconds"):
        assert (root / f"curves-copying-{name}.png").stat().st_size > 0
    # the report of a finished bench writes the same table again
    assert main(["bench", spec(tmp_path), "--root", str(root), "--report"]) == 0


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = spec(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["bench", path, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "budget per run (every model): 20 steps, 1 thread" in out
    assert "| copying | lstm | matched to qrnn | 2 |" in out
    assert "runs: 4 (2 cells × 1 lr × 2 seeds)" in out
    assert sorted(tmp_path.rglob("*")) == before


def test_dry_run_of_a_box_counts_core_and_wall_minutes(tmp_path, capsys):
    text = TINY.replace("steps = 20\n", "minutes = 5\n").replace("threads = 1", "threads = 2")
    assert main(["bench", spec(tmp_path, text), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    # 4 runs × 5 min × 2 threads; 2 workers run 2 rounds of 5 min
    assert "40 core-minutes" in out and "2 worker(s) (4 cores): 10 min" in out


def _replace(old, new):
    assert old in TINY
    return TINY.replace(old, new)


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        (_replace("[tasks.copying]", "[tasks.copyng]"), (), "unknown task 'copyng'"),
        (_replace("[models.lstm]", "[models.transformer]"), (), "unknown model 'transformer'"),
        (_replace("[budget]\nsteps = 20\nthreads = 1\n", ""), (), "no [budget]"),
        (_replace("steps = 20\nthreads = 1\n", ""), (), "the budget rule is missing"),
        (_replace("steps = 20\n", "minutes = 1\n").replace("threads = 1\n", ""), (),
         "a wall-clock box needs a fixed thread count"),
        (TINY + "steps = 50\n", (), "[models.lstm] steps is part of the budget"),
        (TINY + "batch_size = 64\n", (), "would give this model a different budget"),
        (_replace("seeds = [0, 1]", "seeds = []"), (), "[bench] seeds: is empty"),
        (_replace("lr = [3e-3]", "lr = []"), (), "[tuning] lr: is empty"),
        (TINY, ("--storage", "sqlite:////no/such/dir/s.db"), "cannot open the study storage"),
        (TINY, ("--storage", "nosuchdb://host/db"), "cannot open the study storage"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_anything_runs(tmp_path, capsys, text, extra, message):
    root = tmp_path / "bench"
    assert main(["bench", spec(tmp_path, text), "--root", str(root), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qrnn: error: ") and message in err, err
    assert not root.exists()


@pytest.mark.parametrize("name", ["tiny", "table", "paper_scale", "measured"])
def test_shipped_specs_check_and_plan(name, capsys):
    assert main(["bench", str(ROOT / "benchmarks" / "specs" / f"{name}.toml"), "--dry-run"]) == 0
    assert "budget per run (every model)" in capsys.readouterr().out


def test_paper_scale_runs_the_qrnn_on_cuda():
    from qrnn_qiskit.sweep.bench_spec import load

    bench = load(ROOT / "benchmarks" / "specs" / "paper_scale.toml")
    for cell in bench.cells:
        device = cell.sweep.base.engine.device
        assert device == ("cuda" if cell.kind == "qrnn" else "cpu"), (cell.model, device)


def test_chrono_is_the_default_on_long_dependency_tasks(monkeypatch):
    from qrnn_qiskit.training import TrainConfig, make_task
    from qrnn_qiskit.training.tasks.classification import IMDBTask, MNISTTask

    monkeypatch.setattr(MNISTTask, "_load", lambda self, config: self.index.update(train=[0]))
    monkeypatch.setattr(IMDBTask, "_load", lambda self, config: self.index.update(train=[0]))
    expected = {"smnist": 784, "pmnist": 784, "imdb": 200, "smnist-rows": None}
    for task, horizon in expected.items():
        made = make_task(TrainConfig.flat(task=task, model="lstm"))
        assert made.chrono_default == (horizon is not None), task
        if horizon:
            assert made.horizon == horizon


def test_measured_entries_are_quantum_models_not_baselines(tmp_path, capsys):
    """Several mqrnn entries (different --feedforward) beside two qrnn entries: the mqrnn entries
    keep their own sizes (they are not matched to a QRNN like a classical baseline), the lstm is
    matched to the qrnn it names, and match on an mqrnn entry is refused."""
    from qrnn_qiskit.sweep.bench_spec import load

    text = (
        TINY.replace("[models.lstm]\n", "")
        + "".join(
            f'[models.mqrnn-{ff}]\nmodel = "mqrnn"\nfeedforward = "{ff}"\nqubits = 2\nlayers = 1\n'
            for ff in ("linear", "table", "none")
        )
        + '[models.qrnn-nofb]\nmodel = "qrnn"\nqubits = 2\nlayers = 1\nfeedback = false\n'
    )
    text += '[models.lstm]\nmatch = "qrnn"\n'
    bench = load(spec(tmp_path, text))
    cells = {c.model: c for c in bench.cells}
    for ff in ("linear", "table", "none"):
        cell = cells[f"mqrnn-{ff}"]
        assert cell.kind == "mqrnn" and cell.matched_to is None
        assert cell.sweep.base.measured.feedforward == ff
        assert cell.sweep.base.qrnn.controller.width == 128  # its own options, not the qrnn's
    assert not cells["qrnn-nofb"].sweep.base.qrnn.feedback
    assert cells["lstm"].matched_to == "qrnn"
    assert main(["bench", spec(tmp_path, text), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "| copying | mqrnn-table | n=2, L=1, width 128, weak, feedforward table | 2 |" in out
    assert "| copying | qrnn-nofb | n=2, L=1, width 128, no feedback | 2 |" in out
    bad = text.replace('feedforward = "none"\n', 'feedforward = "none"\nmatch = "qrnn"\n')
    assert main(["bench", spec(tmp_path, bad, "bad.toml"), "--dry-run"]) == 2
    assert "match sizes classical baselines" in capsys.readouterr().err

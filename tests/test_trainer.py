import json
import subprocess
import sys

import pytest
import torch

from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.training import TrainConfig, Trainer, load_run, read_metrics

TINY = TrainConfig.flat(
    delay=2,
    qubits=3,
    layers=1,
    width=8,
    steps=6,
    eval_every=3,
    eval_size=16,
    batch_size=4,
    lr=1e-2,
    progress=False,
)


def test_tiny_copying_run_writes_a_complete_run_directory(tmp_path):
    result = Trainer.from_config(TINY, tmp_path / "run", argv=["qrnn", "train"]).fit()
    assert result.steps == 6 and 0 <= result.metrics["accuracy"] <= 1
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["argv"] == ["qrnn", "train"] and record["config"]["qrnn"]["spec"]["n_qubits"] == 3
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [3, 6]
    config, model, state = load_run(tmp_path / "run")
    assert config == TINY and state["step"] == 6
    assert not list((tmp_path / "run").glob("*.tmp"))


@pytest.mark.parametrize("model", ["qrnn", "lstm"])
def test_same_seed_same_result_and_resume_is_exact(tmp_path, model):
    config = TINY.replace(model=model, dropout=0.2 if model == "qrnn" else 0.0)
    straight = Trainer.from_config(config, tmp_path / "a").fit()
    Trainer.from_config(config.replace(steps=3), tmp_path / "b").fit()
    resumed = Trainer.from_config(config, tmp_path / "b", resume=True).fit()
    again = Trainer.from_config(config, tmp_path / "c").fit()
    assert resumed.steps == 6
    assert straight.metrics == resumed.metrics == again.metrics
    a, b = load_run(tmp_path / "a")[1], load_run(tmp_path / "b")[1]
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_baseline_is_matched_to_the_qrnn_flags(tmp_path):
    qrnn = Trainer.from_config(TINY, tmp_path / "q")
    lstm = Trainer.from_config(TINY.replace(model="lstm"), tmp_path / "l")

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert abs(count(lstm.model) - count(qrnn.model)) < 0.1 * count(qrnn.model)


def test_existing_run_dir_needs_resume_and_resume_needs_same_config(tmp_path):
    Trainer.from_config(TINY, tmp_path / "run").fit()
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(QRNNError, match="already exists; pass --resume"):
        Trainer.from_config(TINY, tmp_path / "run")
    with pytest.raises(QRNNError, match="differs in --qubits 3 \\(now 4\\)"):
        Trainer.from_config(TINY.replace(qubits=4), tmp_path / "run", resume=True)
    with pytest.raises(QRNNError, match="has no config.json"):
        Trainer.from_config(TINY, tmp_path / "nothing", resume=True)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_a_model_that_cannot_be_built_writes_no_run_directory(tmp_path):
    # valid as a config, refused by the Aer model builder (2^24·16 bytes × 1024 samples of state
    # vectors)
    config = TINY.replace(backend="aer", qubits=24, batch_size=1024)
    with pytest.raises(QRNNError, match="needs about"):
        Trainer.from_config(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_malformed_checkpoint_is_a_clear_error(tmp_path):
    Trainer.from_config(TINY, tmp_path / "run").fit()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(QRNNError, match="not a readable checkpoint"):
        load_run(tmp_path / "run")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task", "imagenet"], "unknown task"),
        (["--model", "transformer"], "argument --model: invalid choice: 'transformer'"),
        (["--entangler", "swap"], "argument --entangler: invalid choice: 'swap'"),
        (["--activation", "swish"], "argument --activation: invalid choice"),
        (["--qubits", "0"], "--qubits must be an integer in 1..24"),
        (["--qubits", "two"], "argument --qubits: expected an integer, got 'two'"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--init-scale", "nan"], "--init-scale must be a finite number"),
        (["--epochs", "nan"], "--epochs must be a finite number"),
        (["--run-dir", ""], "the run directory must not be empty"),
        (["--qubits", "30"], "--qubits"),
        (["--delay", "0"], "--delay must be >= 1"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    code = main(["train", "--run-dir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_cli_train_and_resume_end_to_end(tmp_path, capsys):
    args = [
        "train",
        "--run-dir",
        str(tmp_path / "r"),
        "--delay",
        "2",
        "--qubits",
        "2",
        "--layers",
        "1",
        "--width",
        "4",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-size",
        "8",
        "--batch-size",
        "4",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "recalled-symbol accuracy" in capsys.readouterr().out
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--steps", "6", "--resume"]) == 0
    assert read_metrics(tmp_path / "r")[-1]["step"] == 6
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert "--resume" not in record["argv"] and len(record["resumes"]) == 1
    lstm = [
        "train",
        "--run-dir",
        str(tmp_path / "l"),
        "--model",
        "lstm",
        "--match-params",
        str(tmp_path / "r"),
        "--delay",
        "2",
        "--steps",
        "2",
        "--eval-size",
        "8",
        "--batch-size",
        "4",
        "--no-progress",
    ]
    assert main(lstm) == 0


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "qrnn_qiskit.cli", "train", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--qubits" in out.stdout


def test_engine_check_runs_before_training(tmp_path, capsys):
    args = [
        "train",
        "--run-dir",
        str(tmp_path / "r"),
        "--delay",
        "1",
        "--qubits",
        "3",
        "--layers",
        "1",
        "--width",
        "4",
        "--steps",
        "1",
        "--eval-size",
        "4",
        "--batch-size",
        "2",
        "--no-progress",
        "--engine-check",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "engine check (3 qubits, complex64)" in out and ": ok" in out
    assert (
        main(["train", "--model", "lstm", "--engine-check", "--run-dir", str(tmp_path / "l")]) == 2
    )
    assert "--engine-check checks" in capsys.readouterr().err


def test_check_engine_detects_a_wrong_engine():
    from qrnn_qiskit.backends import StatevectorEngine
    from qrnn_qiskit.backends.conformance import check_engine
    from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit

    spec = QRNNSpec(3, 1)
    circuit, observables = step_circuit(spec), readout_observables(spec)
    good = StatevectorEngine(circuit, observables, dtype=torch.complex128)
    assert check_engine(good, circuit, observables).ok
    # an engine compiled from another circuit than the one it is checked against must fail
    wrong = StatevectorEngine(
        step_circuit(QRNNSpec(3, 1, "cz_ring")), observables, dtype=torch.complex128
    )
    result = check_engine(wrong, circuit, observables)
    assert not result.ok and "FAILED" in str(result)


def test_learning_rate_schedules_warm_up_and_decay():
    from qrnn_qiskit.training import OptimConfig
    from qrnn_qiskit.training.optim import learning_rate

    constant = OptimConfig(steps=10, lr=0.1)
    assert [learning_rate(constant, s) for s in (0, 9)] == [0.1, 0.1]
    warm = OptimConfig(steps=10, lr=0.1, warmup=4, schedule="cosine")
    lrs = [learning_rate(warm, s) for s in range(10)]
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    linear = OptimConfig(steps=10, lr=1.0, schedule="linear")
    assert learning_rate(linear, 5) == pytest.approx(0.5) and learning_rate(linear, 10) == 0.0


def test_weight_decay_uses_adamw_and_zero_keeps_adam(tmp_path):
    plain = Trainer.from_config(TINY, tmp_path / "a")
    decayed = Trainer.from_config(TINY.replace(weight_decay=0.01), tmp_path / "b")
    assert type(plain.optimizer) is torch.optim.Adam
    assert type(decayed.optimizer) is torch.optim.AdamW
    assert decayed.optimizer.param_groups[0]["weight_decay"] == 0.01


def test_best_checkpoint_follows_the_validation_metric_and_resume_is_exact(tmp_path):
    config = TINY.replace(steps=9, schedule="cosine", warmup=2, weight_decay=0.01)
    straight = Trainer.from_config(config, tmp_path / "a").fit()
    records = read_metrics(tmp_path / "a")
    best = max(records, key=lambda r: (r["accuracy"], -r["step"]))
    assert straight.best_step == best["step"]
    _, _, state = load_run(tmp_path / "a", "best.pt")
    assert state["step"] == best["step"]
    assert [r["lr"] for r in records][-1] < config.optim.lr  # the schedule was applied
    Trainer.from_config(config.replace(steps=3), tmp_path / "b").fit()
    resumed = Trainer.from_config(config, tmp_path / "b", resume=True).fit()
    assert resumed.metrics == straight.metrics and resumed.best_step == straight.best_step


def test_patience_stops_a_run_that_stopped_improving(tmp_path):
    config = TINY.replace(steps=60, eval_every=1, lr=1e-9, patience=2)  # lr ~0: nothing improves
    result = Trainer.from_config(config, tmp_path / "run").fit()
    assert result.stopped and "--patience 2" in result.stopped and result.steps < 60


def test_chrono_init_is_on_for_copying_lstms_and_off_when_asked():
    from qrnn_qiskit.training import make_task

    config = TINY.replace(model="lstm", delay=40)
    model = make_task(config).build_model(config)
    h = model.hidden_size
    forget = model.core.rnn.bias_hh_l0[h : 2 * h]
    assert forget.min() >= 0 and forget.max() <= float(torch.log(torch.tensor(59.0)))
    assert torch.equal(model.core.rnn.bias_hh_l0[:h], -forget)
    off = config.replace(chrono_init=False)
    assert make_task(off).build_model(off).core.rnn.bias_hh_l0[h : 2 * h].min() < 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
        (["--schedule", "exponential"], "argument --schedule: invalid choice"),
        (["--warmup", "50", "--steps", "10"], "--warmup (50 steps) must be shorter than the run"),
        (["--patience", "0"], "--patience must be >= 1"),
        (["--angle-lr", "0"], "--angle-lr must be > 0"),
        (["--angle-lr", "nan"], "--angle-lr must be a finite number"),
        (["--gain-penalty", "-1"], "--gain-penalty must be >= 0"),
    ],
)
def test_bad_optimiser_options_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--run-dir", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_report_shows_both_copying_accuracies_from_the_best_evaluation(tmp_path):
    from qrnn_qiskit.evaluation.report import markdown_table, summarize

    Trainer.from_config(TINY, tmp_path / "run").fit()
    records = [r for r in read_metrics(tmp_path / "run") if "accuracy" in r]
    best = max(records, key=lambda r: r["accuracy"])
    row = summarize(tmp_path / "run", with_test=False)
    assert row.also == {"all_position_accuracy": best["all_position_accuracy"]}
    assert f"; all-position {best['all_position_accuracy']:.2%}" in markdown_table([row])

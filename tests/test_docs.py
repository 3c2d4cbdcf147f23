"""Every `ff train` and `ff sweep` command that README.md and docs/ show builds its configs: a check
that a change to the config rules does not break a documented command (nothing is trained)."""

import re
import shlex
from pathlib import Path

import pytest

from forward_forward import sweep as sweep_mod
from forward_forward.cli import main

ROOT = Path(__file__).resolve().parent.parent
# commands with a placeholder for the reader to fill (a seed S, a run folder, N processes, an elision)
PLACEHOLDER = re.compile(r"RUN_DIR|\$|\.\.\.|<|\[--|\bP\b|\bS\b|\bN\b|PRESET")


def documented_commands():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"\\\n\s*", " ", path.read_text())  # a command continued over lines, joined
        for match in re.finditer(r"(?:^|`)(ff (?:train|sweep) [^`\n#]*)", text, re.M):
            command = match.group(1).strip()
            if not PLACEHOLDER.search(command):
                yield pytest.param(command, id=f"{path.name}: {command}")


COMMANDS = list(documented_commands())


def test_the_docs_show_commands_to_check():
    assert len(COMMANDS) > 50  # the pattern still finds them


@pytest.mark.filterwarnings("ignore:model.activation")  # the activation sweep's unreachable thresholds, on purpose
@pytest.mark.parametrize("command", COMMANDS)
def test_a_documented_command_builds_its_configs(command, monkeypatch, capsys):
    args = shlex.split(command)[1:]
    if args[0] == "train":
        args = [a for a in args if a != "--resume"] + ["--print-config"]
    else:  # every grid point's config is built and checked, and no run starts
        def check_only(sweep, out, jobs=1, progress=True):
            sweep_mod.check(sweep)
            raise SystemExit(0)

        monkeypatch.setattr(sweep_mod, "run_sweep", check_only)
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    assert code == 0, capsys.readouterr().err

"""The README's commands stay true: every populace command it shows exists and takes the options shown."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from functools import cache

from tests.helpers.paths import REPO

README = (REPO / "README.md").read_text()
GROUPS = {"taxonomy", "config", "rules"}


def shown_commands() -> list[list[str]]:
    """populace commands in the README's shell blocks and in its command table."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) for line in block.splitlines()]
    lines += re.findall(r"^\| `(populace [^`]+)`", README, re.MULTILINE)
    commands = []
    for line in lines:
        line = line.split("#")[0].strip().removeprefix(".venv/bin/")
        if line.startswith("populace "):
            cleaned = line.replace("\\|", "|").replace("...", "").replace("[", " ").replace("]", " ")
            commands.append(shlex.split(cleaned))
    return commands


@cache
def help_text(*sub: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *sub, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )
    assert proc.returncode == 0, (sub, proc.stderr[-500:])
    return proc.stdout


def test_every_command_the_readme_shows_exists_with_its_options():
    commands = shown_commands()
    assert len(commands) >= 15
    for command in commands:
        group = [command[1]] if command[1] in GROUPS else []
        # "validate|show|stats" in the table: each alternative is a command; an option belongs to one of them.
        alternatives = [[*group, alt] for alt in command[1 + len(group)].split("|")] if group else [[command[1]]]
        helps = [help_text(*sub) for sub in alternatives]
        for option in (token.split("=")[0] for token in command if token.startswith("--")):
            assert any(option in text for text in helps), f"{' '.join(command)}: no subcommand takes {option}"


def test_the_readme_offline_commands_run():
    stats = subprocess.run(
        [sys.executable, "-m", "cli.main", "taxonomy", "stats", "seed:core", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    numbers = json.loads(stats.stdout)
    assert numbers["roots"] >= 12 and numbers["leaves"] >= 400 and numbers["share_with_priors"] >= 0.6
    schema = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "schema", "--mining"], capture_output=True, text=True, cwd=REPO
    )
    assert "merge_threshold" in json.loads(schema.stdout)["properties"]
    rules = subprocess.run(
        [sys.executable, "-m", "cli.main", "rules", "list", "--json"], capture_output=True, text=True, cwd=REPO
    )
    assert len(json.loads(rules.stdout)) >= 25 + 8

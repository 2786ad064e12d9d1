"""Commands that set up and inspect: init, doctor, the config format and the validation rules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.options import JsonOption
from cli.output import out_console, print_json, print_line, print_table

config_app = typer.Typer(no_args_is_help=True, help="Inspect the run config format.")
rules_app = typer.Typer(no_args_is_help=True, help="Inspect the validation rules.")


def init(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the examples into.")],
    force: Annotated[bool, typer.Option("--force", help="Replace example files that already exist.")] = False,
) -> None:
    """Write example configs, prefect.yaml and the work-pool template into DIR (for an installed populace)."""
    from cli.project_init import init_project

    for path in init_project(folder, overwrite=force):
        print_line(f"wrote {path}")
    print_line(f"next: cd {folder} && populace build --config configs/demo.yaml")


def doctor(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Check this run config's backend, embedder and output folder (default: the defaults).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check what a first run needs (Python, llama.cpp vs this CPU, model, disk, Ray, Prefect, embedder)."""
    from cli.doctor import checks_as_dicts, run_checks
    from schemas.config import RunConfig, load_run_config

    checks = run_checks(load_run_config(config) if config else RunConfig())
    if as_json:
        print_json(checks_as_dicts(checks))
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for check in checks:
            fix = f"  [dim](fix: {check.fix})[/dim]" if check.fix and check.status != "ok" else ""
            out_console.print(
                f"[{colour[check.status]}]{check.status:>4}[/]  {check.name}: {check.detail}{fix}",
                highlight=False,
                soft_wrap=True,
            )
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(1)


@config_app.command("schema")
def config_schema(
    mining: Annotated[bool, typer.Option("--mining", help="The mining config (populace mine --config).")] = False,
) -> None:
    """Print the JSON schema of the run config (or of the mining config)."""
    from schemas.config import RunConfig
    from schemas.mining_config import MiningConfig

    print_json((MiningConfig if mining else RunConfig).model_json_schema())


@config_app.command("reference")
def config_reference() -> None:
    """Print the config reference (markdown) generated from the config models."""
    from schemas.config_reference import config_reference as reference

    sys.stdout.write(reference())


@rules_app.command("list")
def rules_list(as_json: JsonOption = False) -> None:
    """Every check a persona must pass: rule packs (SQL) and built-in checks."""
    from validators.rule_pack import list_checks

    rows = list_checks()
    if as_json:
        print_json(rows)
        return
    print_table(
        ("id", "severity", "pack", "scope", "what it checks / feedback"),
        ((row["id"], row["severity"], row["pack"], row["scope"], row["what"]) for row in rows),
    )


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(doctor)
    app.add_typer(config_app, name="config")
    app.add_typer(rules_app, name="rules")

"""Arguments and options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML run config.")]
RayAddressOption = Annotated[str | None, typer.Option(help="Join this Ray cluster ('auto').")]
RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run folder.")]
TaxonomyArg = Annotated[str, typer.Argument(metavar="TAXONOMY", help="A taxonomy YAML path or seed:NAME.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]

"""Commands on taxonomies: mine one from conversations; validate, show, compare and describe them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import JsonOption, RayAddressOption, TaxonomyArg
from cli.output import out_console, print_json, print_key_values, print_line

taxonomy_app = typer.Typer(no_args_is_help=True, help="Check, inspect and compare taxonomies.")


def mine(
    conversations: Annotated[
        list[Path],
        typer.Option("--conversations", help="JSONL conversation files (OpenAI messages, ShareGPT or WildChat shape)."),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the mined taxonomy YAML (the diff report goes beside it).")],
    taxonomy: Annotated[str, typer.Option(help="The taxonomy to extend: seed:NAME or a YAML path.")] = "seed:core",
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML mining config (`populace config schema --mining`).")
    ] = None,
    max_snippets: Annotated[int | None, typer.Option(help="Revealing sentences to send to the LLM.")] = None,
    min_support: Annotated[int | None, typer.Option(help="Conversations an attribute needs to be added.")] = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Mine attributes from real conversations (PII scrubbed first) into a new taxonomy version."""
    from flows.prefect_api import start_prefect_api_early, using_prefect_api
    from foundation.process_guard import guard_command

    guard_command()  # first: a stop signal from here on unwinds, and nothing started outlives the command
    prefect_api = start_prefect_api_early()  # comes up while the stages import and the inputs are checked
    from flows.mine import check_mining_inputs, mine_taxonomy, report_paths
    from schemas.config import load_config_file
    from schemas.mining_config import MiningConfig

    overrides = {k: v for k, v in (("max_snippets", max_snippets), ("min_support", min_support)) if v is not None}
    cfg = load_config_file(config, MiningConfig, overrides) if config else MiningConfig.model_validate(overrides)
    # Fail fast on bad input, before the flow and Ray start.
    check_mining_inputs(conversations, taxonomy, out, cfg, str(config) if config else "mining config", ray_address)
    with using_prefect_api(prefect_api):
        report = mine_taxonomy([str(p) for p in conversations], taxonomy, str(out), cfg, ray_address)
    funnel, counts = report["funnel"], report["counts"]
    print_key_values(
        f"mined {report['to']['name']} {report['to']['version']}",
        [
            *(
                (key.replace("_", " "), str(funnel[key]))
                for key in ("conversations", "revealing_sentences", "snippets_sent", "candidates_kept", "wall_seconds")
            ),
            ("pii scrubbed", ", ".join(f"{k} {v}" for k, v in funnel["pii_scrubbed"].items()) or "none"),
            *((key.replace("_", " "), str(value)) for key, value in counts.items()),
        ],
    )
    json_path, md_path = report_paths(out)
    out_console.print(f"wrote {out}, {json_path}, {md_path}", soft_wrap=True)


@taxonomy_app.command("validate")
def taxonomy_validate(
    taxonomy: TaxonomyArg,
    rehash: Annotated[bool, typer.Option(help="Rewrite the file with its current content hash.")] = False,
) -> None:
    """Check a taxonomy file; exit 2 with the field and fix when it is not usable."""
    from taxonomy.loader import load_taxonomy, rehash_taxonomy

    loaded = rehash_taxonomy(taxonomy) if rehash else load_taxonomy(taxonomy)
    print_line(
        f"ok: {loaded.name} {loaded.version}, {len(loaded.attributes())} attributes, hash {loaded.content_hash[:16]}"
    )


@taxonomy_app.command("show")
def taxonomy_show(
    taxonomy: TaxonomyArg,
    depth: Annotated[int, typer.Option(help="Levels to show (4 shows attributes).")] = 4,
) -> None:
    """Print the category tree with each attribute's kind and top values."""
    from rich.tree import Tree

    from taxonomy.loader import load_taxonomy

    loaded = load_taxonomy(taxonomy)
    tree = Tree(f"[bold]{loaded.name}[/bold] {loaded.version}")

    def add(branch: Tree, node: Any, level: int) -> None:
        child = branch.add(f"[bold]{node.label}[/bold] ({node.id})")
        if level + 1 >= depth:
            return
        for attr in node.attributes:
            top = ", ".join(list(attr.values)[:4]) if attr.values else attr.guidance or f"{attr.minimum}-{attr.maximum}"
            child.add(f"{attr.label} [dim]{attr.id} {attr.kind}{' core' if attr.core else ''}: {top}[/dim]")
        for sub in node.subcategories:
            add(child, sub, level + 1)

    for root in loaded.categories:
        add(tree, root, 0)
    out_console.print(tree)


@taxonomy_app.command("stats")
def taxonomy_stats_command(taxonomy: TaxonomyArg, as_json: JsonOption = False) -> None:
    """Roots, nodes, leaves, depth histogram and the share of leaves with priors."""
    from taxonomy.inspect import taxonomy_stats
    from taxonomy.loader import load_taxonomy

    stats = taxonomy_stats(load_taxonomy(taxonomy))
    if as_json:
        print_json(stats)
        return
    print_key_values(
        f"{stats['name']} {stats['version']}", [(k, str(v)) for k, v in stats.items() if k not in ("name", "version")]
    )


@taxonomy_app.command("diff")
def taxonomy_diff_command(
    old: Annotated[str, typer.Argument(metavar="OLD")],
    new: Annotated[str, typer.Argument(metavar="NEW")],
    as_json: JsonOption = False,
) -> None:
    """Attributes added, removed and changed between two taxonomies."""
    from taxonomy.inspect import taxonomy_diff
    from taxonomy.loader import load_taxonomy

    diff = taxonomy_diff(load_taxonomy(old), load_taxonomy(new))
    if as_json:
        print_json(diff)
        return
    print_key_values(f"{old} -> {new}", [(k, str(v)) for k, v in diff["counts"].items()])
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for kind, mark in marks.items():
        for attr_id in diff[kind]:
            print_line(f"{mark} {attr_id}")


@taxonomy_app.command("schema")
def taxonomy_schema() -> None:
    """Print the JSON schema of the taxonomy format."""
    from taxonomy.model import Taxonomy

    print_json(Taxonomy.model_json_schema())


def register(app: typer.Typer) -> None:
    app.command()(mine)
    app.add_typer(taxonomy_app, name="taxonomy")

"""The populace command line."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from flows.process_guard import (
    StopRequested,
    command_is_guarded,
    exit_stopped,
    exit_with_error,
    guard_command,
    stop_requested,
)
from schemas.config import RunConfig, load_run_config
from schemas.errors import PopulaceError, UserInputError

# Prefect's ephemeral API needs ~30 s to start on a fresh, small machine; its default is 20 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build synthetic persona corpora.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the run config format.")
app.add_typer(config_app, name="config")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Check, inspect and compare taxonomies.")
app.add_typer(taxonomy_app, name="taxonomy")
out_console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML run config.")]


def print_key_values(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    out_console.print(table)


@config_app.command("schema")
def config_schema(
    mining: Annotated[bool, typer.Option("--mining", help="The mining config (populace mine --config).")] = False,
) -> None:
    """Print the JSON schema of the run config (or of the mining config)."""
    from schemas.mining_config import MiningConfig

    model = MiningConfig if mining else RunConfig
    sys.stdout.write(json.dumps(model.model_json_schema(), indent=2) + "\n")


@config_app.command("reference")
def config_reference() -> None:
    """Print the config reference (markdown) generated from the config models."""
    from flows.config_reference import config_reference as reference

    sys.stdout.write(reference())


@app.command()
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
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster ('auto').")] = None,
) -> None:
    """Mine attributes from real conversations (PII scrubbed first) into a new taxonomy version."""
    from schemas.config import load_config_file
    from schemas.mining_config import MiningConfig

    overrides = {k: v for k, v in (("max_snippets", max_snippets), ("min_support", min_support)) if v is not None}
    cfg = load_config_file(config, MiningConfig, overrides) if config else MiningConfig.model_validate(overrides)
    from dedup.embedders.factory import check_embedder_files
    from flows.mine import mine_taxonomy, report_paths
    from taxonomy.loader import load_taxonomy
    from taxonomy.mining.conversations import read_conversations
    from workers.proposer import check_ray_address

    load_taxonomy(taxonomy)  # fail fast on bad input, before Prefect and Ray start
    read_conversations(conversations)
    check_embedder_files(cfg.embedder, str(config) if config else "mining config", "embedder")
    check_ray_address(ray_address)
    if out.suffix not in (".yaml", ".yml"):
        raise UserInputError(str(out), "--out", "is not a .yaml path", "name the output like mined.yaml")
    guard_command()
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


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the examples into.")],
    force: Annotated[bool, typer.Option("--force", help="Replace example files that already exist.")] = False,
) -> None:
    """Write example configs, prefect.yaml and the work-pool template into DIR (for an installed populace)."""
    from flows.project_init import init_project

    for path in init_project(folder, overwrite=force):
        out_console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    out_console.print(
        f"next: cd {folder} && populace build --config configs/demo.yaml", soft_wrap=True, highlight=False
    )


@app.command()
def build(
    config: ConfigOption,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: <output_dir>/<name>-<hash>).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Override the population size.")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster ('auto').")] = None,
    against: Annotated[list[Path] | None, typer.Option(help="Run folder whose personas must not be repeated.")] = None,
) -> None:
    """Build a corpus, or resume the unfinished run of the same config."""
    overrides: dict = {}
    if n:
        overrides["population"] = n
    if against:
        overrides["against"] = [str(p) for p in against]
    cfg = load_run_config(config, overrides)
    from flows.build import build_corpus, check_inputs
    from workers.proposer import check_ray_address

    check_inputs(cfg)  # fail fast, before Prefect starts
    check_ray_address(ray_address)
    guard_command()
    run_dir = build_corpus(cfg, str(out) if out else None, ray_address)
    manifest = orjson.loads((Path(run_dir) / "manifest.json").read_bytes())
    keys = (
        "requested",
        "produced",
        "rejected",
        "revised",
        "backfilled",
        "backfill_stopped_by",
        "acceptance_rate",
        "prompt_tokens",
        "completion_tokens",
        "completion_tokens_per_persona",
        "backend_retries",
    )
    print_key_values(
        f"run {manifest['run_id']}",
        [
            *((key, str(manifest[key])) for key in keys),
            *((f"  rejected: {reason}", str(n)) for reason, n in manifest["rejected_by_reason"].items()),
            *((f"  redrawn for: {rule}", str(n)) for rule, n in manifest["constraint_redraws"].items()),
            *((f"  seconds: {stage}", f"{s:.1f}") for stage, s in manifest["last_run_stage_seconds"].items()),
            (
                "engine starts (seconds loading)",
                "{starts} ({start_seconds:.1f})".format(**manifest["last_run_engines"]),
            ),
        ],
    )
    out_console.print(f"corpus: {run_dir}", soft_wrap=True)
    out_console.print(
        f'query:  populace query {run_dir} "select name, narrative from personas limit 5"',
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def preview(config: ConfigOption, n: Annotated[int, typer.Option("--n")] = 3) -> None:
    """Print a few sample personas from the config; writes nothing."""
    cfg = load_run_config(config)
    from flows.preview import preview_personas

    guard_command()

    for item in preview_personas(cfg, n):
        facts = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in list(item.skeleton.attributes.items())[:12])
        proposal = item.outcome.proposal
        body = f"[bold]{proposal.name}[/bold]\n{proposal.narrative}" if proposal else item.raw_output
        verdict = "passed" if item.outcome.passed else "failed: " + "; ".join(item.outcome.feedback)
        out_console.print(
            Panel(
                f"{body}\n\n[dim]{facts}, ...\n{verdict}[/dim]",
                title=f"{item.skeleton.persona_id} ({item.skeleton.stratum})",
            )
        )


@app.command()
def sample(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for skeletons/, plan.json and metrics.json.")],
    n: Annotated[int | None, typer.Option("--n", help="Override the population size.")] = None,
) -> None:
    """Write only the skeletons (no LLM) and the plan's fit and coverage metrics."""
    cfg = load_run_config(config, {"population": n} if n else None)
    from flows.sample_only import write_sample

    metrics = write_sample(cfg, out)
    print_sampling_metrics(metrics)
    out_console.print(f"wrote {out / 'skeletons'}, {out / 'plan.json'}, {out / 'metrics.json'}")


def print_sampling_metrics(metrics: dict) -> None:
    table = Table(title=f"Sampling: {metrics['personas']:,} personas")
    for column in ("target", "max abs dev", "TVD", "KL"):
        table.add_column(column)
    rows = [("joint cells", metrics["joint"]), *metrics["marginals"].items()]
    rows += [(f"preset {k}", v) for k, v in metrics.get("preset_fit", {}).items()]
    for name, d in rows:
        table.add_row(name, f"{d['max_abs_dev']:.5f}", f"{d['tvd']:.5f}", f"{d['kl']:.5f}")
    out_console.print(table)
    per = metrics["attributes_per_persona"]
    print_key_values(
        "Coverage",
        [
            ("leaf coverage", f"{metrics['leaf_coverage']:.3f}"),
            ("leaf entropy", f"{metrics['leaf_entropy']:.3f}"),
            ("attributes per persona", f"{per['mean']:.1f} (min {per['min']}, max {per['max']})"),
            ("share per root", ", ".join(f"{k} {v:.2f}" for k, v in metrics["root_share"].items())),
            *((f"redrawn for: {rule}", str(count)) for rule, count in metrics.get("constraint_redraws", {}).items()),
        ],
    )


TaxonomyArg = Annotated[str, typer.Argument(metavar="TAXONOMY", help="A taxonomy YAML path or seed:NAME.")]


@taxonomy_app.command("validate")
def taxonomy_validate(
    taxonomy: TaxonomyArg,
    rehash: Annotated[bool, typer.Option(help="Rewrite the file with its current content hash.")] = False,
) -> None:
    """Check a taxonomy file; exit 2 with the field and fix when it is not usable."""
    from taxonomy.loader import load_taxonomy, parse_taxonomy, read_taxonomy_source, write_taxonomy

    if rehash:
        where, data = read_taxonomy_source(taxonomy)
        raw = yaml_without_hash(data)
        loaded = write_taxonomy(parse_taxonomy(raw, where), Path(where))
    else:
        loaded = load_taxonomy(taxonomy)
    out_console.print(
        f"ok: {loaded.name} {loaded.version}, {len(loaded.attributes())} attributes, hash {loaded.content_hash[:16]}"
    )


def yaml_without_hash(data: bytes) -> bytes:
    import yaml

    raw = yaml.safe_load(data.decode("utf-8"))
    if isinstance(raw, dict):
        raw.pop("content_hash", None)
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode()


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

    def add(branch, node, level: int) -> None:
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
def taxonomy_stats_command(
    taxonomy: TaxonomyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Roots, nodes, leaves, depth histogram and the share of leaves with priors."""
    from taxonomy.inspect import taxonomy_stats
    from taxonomy.loader import load_taxonomy

    stats = taxonomy_stats(load_taxonomy(taxonomy))
    if as_json:
        sys.stdout.write(json.dumps(stats, indent=2) + "\n")
        return
    print_key_values(
        f"{stats['name']} {stats['version']}", [(k, str(v)) for k, v in stats.items() if k not in ("name", "version")]
    )


@taxonomy_app.command("diff")
def taxonomy_diff_command(
    old: Annotated[str, typer.Argument(metavar="OLD")],
    new: Annotated[str, typer.Argument(metavar="NEW")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Attributes added, removed and changed between two taxonomies."""
    from taxonomy.inspect import taxonomy_diff
    from taxonomy.loader import load_taxonomy

    diff = taxonomy_diff(load_taxonomy(old), load_taxonomy(new))
    if as_json:
        sys.stdout.write(json.dumps(diff, indent=2) + "\n")
        return
    print_key_values(f"{old} -> {new}", [(k, str(v)) for k, v in diff["counts"].items()])
    for kind in ("added", "removed", "changed"):
        for attr_id in diff[kind]:
            out_console.print(f"{'+' if kind == 'added' else '-' if kind == 'removed' else '~'} {attr_id}")


@taxonomy_app.command("schema")
def taxonomy_schema() -> None:
    """Print the JSON schema of the taxonomy format."""
    from taxonomy.model import Taxonomy

    sys.stdout.write(json.dumps(Taxonomy.model_json_schema(), indent=2) + "\n")


@app.command()
def dedup(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A .jsonl or .parquet corpus.")],
    text_field: Annotated[str, typer.Option(help="Field holding the text (dots reach nested fields).")],
    out: Annotated[Path, typer.Option(help="Folder for clusters.parquet and summary.json.")],
    id_field: Annotated[str | None, typer.Option(help="Field holding a unique id (default: row number).")] = None,
    preset: Annotated[str, typer.Option(help="populace or personahub")] = "populace",
    semantic: Annotated[bool, typer.Option(help="Embedding layer (static embedder).")] = True,
) -> None:
    """Deduplicate any corpus: exact, verified MinHash and embedding layers, keep-first."""
    from pydantic import ValidationError

    from flows.standalone_dedup import dedup_file
    from schemas.config import DedupConfig

    try:
        cfg = DedupConfig(preset=preset, semantic=semantic, facts=False)
    except ValidationError as exc:
        raise UserInputError("--preset", "preset", f"unknown preset '{preset}'", "use populace or personahub") from exc
    summary = dedup_file(source, text_field, id_field, out, cfg)
    print_key_values(
        f"dedup {source.name}",
        [
            *((key, str(summary[key])) for key in ("records", "removed", "removed_share")),
            *((f"  removed by {layer}", str(n)) for layer, n in summary["removed_by_layer"].items()),
            *((f"  PersonaHub rate {name}", f"{rate:.4f}") for name, rate in summary["personahub_rates"].items()),
        ],
    )
    out_console.print(f"clusters: {out / 'clusters.parquet'}", soft_wrap=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run folder.")],
    reference: Annotated[
        list[Path] | None,
        typer.Option(help="A reference corpus (.jsonl or .parquet); repeat, each with its --text-field."),
    ] = None,
    text_field: Annotated[
        list[str] | None,
        typer.Option(help="The field holding each reference's persona text (dots reach nested fields)."),
    ] = None,
    references_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding personahub.jsonl, deeppersona.jsonl, opencharacter.jsonl and/or tinytroupe.jsonl "
            "(default: $POPULACE_REFERENCE_DIR, else the shared sample beside a checkout)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Seeds the Self-BLEU and Vendi samples.")] = 0,
) -> None:
    """Quality metrics of the corpus beside reference corpora; also RUN_DIR/evaluation/*.json and *.png."""
    from flows.evaluate import Reference, default_references, evaluate_run, reference_folder

    references = reference or []
    fields = text_field or []
    if len(fields) != len(references):
        raise UserInputError(
            "--text-field",
            "--text-field",
            f"{len(references)} references but {len(fields)} text fields",
            "give one --text-field after each --reference",
        )
    chosen = [Reference(path.stem, path, field) for path, field in zip(references, fields, strict=True)]
    if not chosen:
        chosen = default_references(references_dir)
        if not chosen:
            err_console.print(
                f"note: no reference corpora in {reference_folder(references_dir)}; evaluating this "
                "corpus alone (pass --references-dir DIR, or --reference FILE --text-field F)"
            )
    result = evaluate_run(run_dir, chosen, seed=seed)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return
    print_evaluation(result)
    folder = run_dir / "evaluation"
    out_console.print(f"wrote {folder / 'evaluation.json'}, {folder / 'comparison.png'}", soft_wrap=True)


def print_evaluation(result: dict) -> None:
    corpora = result["corpora"]
    table = Table(title=f"Quality: {result['run']} beside {len(corpora) - 1} reference corpora ({result['embedder']})")
    table.add_column("metric")
    for name in corpora:
        table.add_column(name.split(":")[0], justify="right")
    for metric in next(iter(corpora.values())):
        table.add_row(metric.replace("_", " "), *(_cell(c.get(metric)) for c in corpora.values()))
    out_console.print(table)
    ours = result["ours"]
    rows = [
        ("quota joint TVD", _cell(ours["joint"].get("tvd"))),
        ("quota joint max abs dev", _cell(ours["joint"].get("max_abs_dev"))),
        ("taxonomy leaf coverage", _cell(ours.get("leaf_coverage"))),
        ("taxonomy leaf entropy (normalised)", _cell(ours.get("leaf_entropy"))),
        *((f"share of attributes: {root}", _cell(share)) for root, share in ours.get("root_share", {}).items()),
    ]
    for name, fit in ours.get("preset_fit", {}).items():
        rows.append((f"preset {name} TVD", _cell(fit.get("tvd"))))
        if "cramers_v_error" in fit:
            rows.append((f"preset {name} Cramér's V error", _cell(fit["cramers_v_error"])))
    rows += [(f"round {v['round']} {v['check']}", _cell(v["rate"])) for v in ours["rule_violations"] if v["failed"]]
    print_key_values("Ours: plan fit and rule violation rates", rows)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return "n/a" if value is None else str(value)  # a rate this corpus's fields do not allow


@app.command()
def serve(
    config: ConfigOption,
    cron: Annotated[str, typer.Option(help="When to build, as a cron expression (UTC).")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "scheduled-build",
    out: Annotated[Path | None, typer.Option(help="Run folder (default: <output_dir>/<name>-<hash>).")] = None,
) -> None:
    """Serve the build as a Prefect deployment on a cron schedule (long-running; Ctrl-C stops it)."""
    from prefect import serve as prefect_serve
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    from flows.build import check_inputs
    from flows.deployments import build_deployment

    check_inputs(load_run_config(config))
    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        raise UserInputError(
            "--cron", "--cron", f"'{cron}' is not a cron expression", "write five fields, e.g. '0 3 * * *'"
        ) from exc
    prefect_serve(build_deployment(str(config.resolve()), cron, name, str(out) if out else None))


@app.command()
def doctor(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Check this run config's backend, embedder and output folder (default: the defaults).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check what a first run needs (Python, llama.cpp vs this CPU, model, disk, Ray, Prefect, embedder)."""
    from flows.doctor import checks_as_dicts, run_checks

    checks = run_checks(load_run_config(config) if config else RunConfig())
    if as_json:
        sys.stdout.write(json.dumps(checks_as_dicts(checks), indent=2) + "\n")
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


RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run folder.")]


@app.command()
def report(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report/index.html (static, self-contained) and RUN_DIR/README.md (dataset card)."""
    from corpus.dataset_card import write_dataset_card
    from corpus.report import write_report
    from corpus.run_folder import RunFolder
    from flows.build import leaf_counts
    from taxonomy.loader import load_taxonomy

    if not (run_dir / "manifest.json").is_file():
        raise UserInputError(
            str(run_dir), "RUN_DIR", "not a run folder (no manifest.json)", "pass a folder written by populace build"
        )
    cfg = load_run_config(RunFolder(run_dir).config)
    path = write_report(run_dir, leaf_counts(load_taxonomy(cfg.taxonomy)))
    card = write_dataset_card(run_dir, cfg.license)
    out_console.print(f"wrote {path} and {card}", soft_wrap=True)


@app.command()
def export(
    run_dir: RunDirArg,
    out: Annotated[Path, typer.Option(help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
) -> None:
    """Write the personas as JSON Lines or CSV (facts as one JSON object)."""
    from corpus.export import export_personas

    count = export_personas(run_dir, fmt, out)
    out_console.print(f"wrote {count} personas to {out}", soft_wrap=True)


rules_app = typer.Typer(no_args_is_help=True, help="Inspect the validation rules.")
app.add_typer(rules_app, name="rules")


@rules_app.command("list")
def rules_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every check a persona must pass: rule packs (SQL) and built-in checks."""
    from validators.rule_pack import BUILTIN_CHECKS, load_rule_pack

    rows = [
        *({**c, "scope": "prose"} for c in BUILTIN_CHECKS),
        *(
            {"id": r.id, "severity": r.severity, "pack": r.pack, "scope": r.scope, "what": r.message}
            for r in load_rule_pack()
        ),
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "severity", "pack", "scope", "what it checks / feedback")
    for row in rows:
        table.add_row(row["id"], row["severity"], row["pack"], row["scope"], row["what"])
    out_console.print(table)


@app.command()
def query(
    run_dir: Path,
    sql: str,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Answer SQL from a run's corpus.duckdb (views: personas, rejects, attributes), read-only."""
    if fmt not in ("table", "csv", "json"):
        raise UserInputError("--format", "--format", f"unknown format '{fmt}'", "use table, csv or json")
    from corpus.catalog import query_run

    result = query_run(run_dir, sql)
    rows = result.to_pylist()
    if fmt == "json":
        sys.stdout.write(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.column_names)
        writer.writerows([[row[c] for c in result.column_names] for row in rows])
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(*result.column_names)
        for row in rows:
            table.add_row(*[str(row[c]) for c in result.column_names])
        out_console.print(table)


@app.command()
def catalog(run_dir: RunDirArg) -> None:
    """Rewrite RUN_DIR/corpus.duckdb for where the folder is now (after a move or copy; `query` does it too)."""
    from corpus.catalog import build_catalog
    from corpus.run_folder import RunFolder

    run = RunFolder(run_dir)
    if not run.manifest.is_file():
        raise UserInputError(str(run_dir), "manifest.json", "not a run folder", "pass a folder populace build wrote")
    out_console.print(
        f"wrote {build_catalog(run)}: its views read {run.root.resolve()}", soft_wrap=True, highlight=False
    )


def main() -> None:
    try:
        # Outside standalone mode typer returns an exit code instead of exiting: typer.Exit(n)
        # from a command, and 130 for a KeyboardInterrupt (the signal that caused it is ours).
        code = app(standalone_mode=False)
        if stop_requested() is not None:
            exit_stopped(stop_requested())
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserInputError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except PopulaceError as exc:
        if command_is_guarded():  # stop Ray and Prefect first, so their shutdown logs do not bury the reason
            exit_with_error(str(exc))
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort, keeping the cause
        cause = exc.__cause__ if isinstance(exc.__cause__, StopRequested) else exc
        exit_stopped(cause.signum if isinstance(cause, StopRequested) else signal.SIGINT)
    except usage_errors() as exc:  # a missing or malformed option: usage and exit code 2, no traceback
        exc.show()
        sys.exit(exc.exit_code)


def usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors, from the click package and from the copy of click newer typer releases carry."""
    import click

    vendored = getattr(typer, "TyperException", None)
    return (click.ClickException, *([vendored] if vendored else []))


if __name__ == "__main__":
    main()

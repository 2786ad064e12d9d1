"""Commands on corpora: dedup any file; evaluate, report, export, query and catalog a run folder."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import RunDirArg
from cli.output import cell, print_json, print_key_values, print_line, print_note, print_table


def dedup(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A .jsonl or .parquet corpus.")],
    text_field: Annotated[str, typer.Option(help="Field holding the text (dots reach nested fields).")],
    out: Annotated[Path, typer.Option(help="Folder for clusters.parquet and summary.json.")],
    id_field: Annotated[str | None, typer.Option(help="Field holding a unique id (default: row number).")] = None,
    preset: Annotated[str, typer.Option(help="populace or personahub")] = "populace",
    semantic: Annotated[bool, typer.Option(help="Embedding layer (static embedder).")] = True,
) -> None:
    """Deduplicate any corpus: exact, verified MinHash and embedding layers, keep-first."""
    from corpus.dedup_file import dedup_file, file_dedup_config

    summary = dedup_file(source, text_field, id_field, out, file_dedup_config(preset, semantic))
    print_key_values(
        f"dedup {source.name}",
        [
            *((key, str(summary[key])) for key in ("records", "removed", "removed_share")),
            *((f"  removed by {layer}", str(n)) for layer, n in summary["removed_by_layer"].items()),
            *((f"  PersonaHub rate {name}", f"{rate:.4f}") for name, rate in summary["personahub_rates"].items()),
        ],
    )
    print_line(f"clusters: {out / 'clusters.parquet'}")


def evaluate(
    run_dir: RunDirArg,
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
    from corpus.evaluate_run import choose_references, evaluate_run, reference_folder
    from corpus.run_folder import RunFolder

    chosen = choose_references(reference or [], text_field or [], references_dir)
    if not chosen:
        print_note(
            f"no reference corpora in {reference_folder(references_dir)}; evaluating this "
            "corpus alone (pass --references-dir DIR, or --reference FILE --text-field F)"
        )
    result = evaluate_run(run_dir, chosen, seed=seed)
    if as_json:
        print_json(result)
        return
    print_evaluation(result)
    folder = RunFolder(run_dir).evaluation
    print_line(f"wrote {folder / 'evaluation.json'}, {folder / 'comparison.png'}")


def print_evaluation(result: dict[str, Any]) -> None:
    corpora = result["corpora"]
    print_table(
        ["metric", *(name.split(":")[0] for name in corpora)],
        (
            (metric.replace("_", " "), *(cell(c.get(metric)) for c in corpora.values()))
            for metric in next(iter(corpora.values()))
        ),
        title=f"Quality: {result['run']} beside {len(corpora) - 1} reference corpora ({result['embedder']})",
    )
    ours = result["ours"]
    rows = [
        ("quota joint TVD", cell(ours["joint"].get("tvd"))),
        ("quota joint max abs dev", cell(ours["joint"].get("max_abs_dev"))),
        ("taxonomy leaf coverage", cell(ours.get("leaf_coverage"))),
        ("taxonomy leaf entropy (normalised)", cell(ours.get("leaf_entropy"))),
        *((f"share of attributes: {root}", cell(share)) for root, share in ours.get("root_share", {}).items()),
    ]
    for name, fit in ours.get("preset_fit", {}).items():
        rows.append((f"preset {name} TVD", cell(fit.get("tvd"))))
        if "cramers_v_error" in fit:
            rows.append((f"preset {name} Cramér's V error", cell(fit["cramers_v_error"])))
    rows += [(f"round {v['round']} {v['check']}", cell(v["rate"])) for v in ours["rule_violations"] if v["failed"]]
    print_key_values("Ours: plan fit and rule violation rates", rows)


def report(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report/index.html (static, self-contained) and RUN_DIR/README.md (dataset card)."""
    from corpus.publish import republish

    run = republish(run_dir)
    print_line(f"wrote {run.report_page} and {run.card}")


def export(
    run_dir: RunDirArg,
    out: Annotated[Path, typer.Option(help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
) -> None:
    """Write the personas as JSON Lines or CSV (facts as one JSON object)."""
    from corpus.export import export_personas
    from corpus.run_folder import RunFolder

    count = export_personas(RunFolder(run_dir), fmt, out)
    print_line(f"wrote {count} personas to {out}")


def query(
    run_dir: Path,
    sql: str,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Answer SQL from a run's corpus.duckdb (views: personas, rejects, attributes), read-only."""
    from corpus.catalog import query_run
    from schemas.errors import UserInputError

    if fmt not in ("table", "csv", "json"):
        raise UserInputError("--format", "--format", f"unknown format '{fmt}'", "use table, csv or json")
    result = query_run(run_dir, sql)
    records = result.to_pylist()
    rows = [[record[c] for c in result.column_names] for record in records]
    if fmt == "json":
        print_json(records)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.column_names)
        writer.writerows(rows)
    else:
        print_table(result.column_names, rows)


def catalog(run_dir: RunDirArg) -> None:
    """Rewrite RUN_DIR/corpus.duckdb for where the folder is now (after a move or copy; `query` does it too)."""
    from corpus.catalog import build_catalog
    from corpus.run_folder import RunFolder

    run = RunFolder.existing(run_dir)
    print_line(f"wrote {build_catalog(run)}: its views read {run.root.resolve()}")


def register(app: typer.Typer) -> None:
    for command in (dedup, evaluate, report, export, query, catalog):
        app.command()(command)

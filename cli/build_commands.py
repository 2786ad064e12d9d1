"""Commands that plan and build corpora: build, preview, sample, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import ConfigOption, RayAddressOption
from cli.output import out_console, print_key_values, print_line, print_table

BUILD_SUMMARY_KEYS = (
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


def build(
    config: ConfigOption,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: <output_dir>/<name>-<hash>).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Override the population size.")] = None,
    ray_address: RayAddressOption = None,
    against: Annotated[list[Path] | None, typer.Option(help="Run folder whose personas must not be repeated.")] = None,
) -> None:
    """Build a corpus, or resume the unfinished run of the same config."""
    from flows.prefect_api import start_prefect_api_early, using_prefect_api
    from foundation.process_guard import guard_command

    guard_command()  # first: a stop signal from here on unwinds, and nothing started outlives the command
    prefect_api = start_prefect_api_early()  # comes up while the stages import and the inputs are checked
    from corpus.run_folder import RunFolder
    from flows.build import build_corpus, check_inputs_for_build
    from schemas.config import load_run_config
    from workers.proposer import check_ray_address

    overrides: dict[str, Any] = {}
    if n:
        overrides["population"] = n
    if against:
        overrides["against"] = [str(p) for p in against]
    cfg = load_run_config(config, overrides)
    check_inputs_for_build(cfg)  # fail fast, before the flow starts (it uses the result)
    check_ray_address(ray_address)
    with using_prefect_api(prefect_api):
        run_dir = build_corpus(cfg, str(out) if out else None, ray_address)
    manifest = RunFolder(Path(run_dir)).read_manifest()
    print_key_values(
        f"run {manifest['run_id']}",
        [
            *((key, str(manifest[key])) for key in BUILD_SUMMARY_KEYS),
            *((f"  rejected: {reason}", str(n)) for reason, n in manifest["rejected_by_reason"].items()),
            *((f"  redrawn for: {rule}", str(n)) for rule, n in manifest["constraint_redraws"].items()),
            *((f"  seconds: {stage}", f"{s:.1f}") for stage, s in manifest["last_run_stage_seconds"].items()),
            (
                "engine starts (seconds loading)",
                "{starts} ({start_seconds:.1f})".format(**manifest["last_run_engines"]),
            ),
        ],
    )
    print_line(f"corpus: {run_dir}")
    print_line(f'query:  populace query {run_dir} "select name, narrative from personas limit 5"')


def preview(config: ConfigOption, n: Annotated[int, typer.Option("--n")] = 3) -> None:
    """Print a few sample personas from the config; writes nothing."""
    from rich.panel import Panel

    from foundation.process_guard import guard_command
    from schemas.config import load_run_config
    from validators.preview import preview_personas

    cfg = load_run_config(config)
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


def sample(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for skeletons/, plan.json and metrics.json.")],
    n: Annotated[int | None, typer.Option("--n", help="Override the population size.")] = None,
) -> None:
    """Write only the skeletons (no LLM) and the plan's fit and coverage metrics."""
    from corpus.sample_folder import write_sample
    from schemas.config import load_run_config

    cfg = load_run_config(config, {"population": n} if n else None)
    print_sampling_metrics(write_sample(cfg, out))
    print_line(f"wrote {out / 'skeletons'}, {out / 'plan.json'}, {out / 'metrics.json'}")


def print_sampling_metrics(metrics: dict[str, Any]) -> None:
    rows = [("joint cells", metrics["joint"]), *metrics["marginals"].items()]
    rows += [(f"preset {k}", v) for k, v in metrics.get("preset_fit", {}).items()]
    print_table(
        ("target", "max abs dev", "TVD", "KL"),
        ((name, f"{d['max_abs_dev']:.5f}", f"{d['tvd']:.5f}", f"{d['kl']:.5f}") for name, d in rows),
        title=f"Sampling: {metrics['personas']:,} personas",
    )
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


def serve(
    config: ConfigOption,
    cron: Annotated[str, typer.Option(help="When to build, as a cron expression (UTC).")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "scheduled-build",
    out: Annotated[Path | None, typer.Option(help="Run folder (default: <output_dir>/<name>-<hash>).")] = None,
) -> None:
    """Serve the build as a Prefect deployment on a cron schedule (long-running; Ctrl-C stops it)."""
    from flows.build import check_inputs
    from flows.deployments import check_cron, serve_build
    from schemas.config import load_run_config

    check_inputs(load_run_config(config))
    check_cron(cron)
    serve_build(str(config.resolve()), cron, name, str(out) if out else None)


def register(app: typer.Typer) -> None:
    for command in (build, preview, sample, serve):
        app.command()(command)

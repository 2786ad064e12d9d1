"""Prefect artifacts that summarise a build in the Prefect UI."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from taxonomy.mining.report import report_markdown


def publish_mining_artifact(report: dict[str, Any]) -> None:
    """The mining diff report (labels, ids and counts only) as a markdown artifact."""
    create_markdown_artifact(
        key="mined-taxonomy",
        markdown=report_markdown(report),
        description=f"Mining {report['from']['name']} -> {report['to']['version']}",
    )


def publish_summary_artifacts(run_id: str, summary: dict[str, Any]) -> None:
    key = "".join(c if c.isalnum() else "-" for c in run_id.lower())[:60]
    lines = [
        f"# populace run `{run_id}`",
        "",
        f"- produced **{summary['produced']}**, rejected {summary['rejected']}, "
        f"acceptance rate {summary['acceptance_rate']:.1%}",
        f"- completion tokens per persona: {summary['completion_tokens_per_persona']}",
        f"- backend retries: {summary['backend_retries']}",
        "",
        "| stratum | requested | produced |",
        "|---|---|---|",
        *[f"| {s} | {v['requested']} | {v['produced']} |" for s, v in summary["strata"].items()],
        "",
        "| rejected because | count |",
        "|---|---|",
        *[f"| {reason} | {count} |" for reason, count in summary["rejected_by_reason"].items()],
    ]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines), description="Build summary")
    failing = [row for row in summary["rule_violations"] if row["failed"]]
    if failing:
        create_table_artifact(key=f"{key}-violations", table=failing, description="Failed checks per round")

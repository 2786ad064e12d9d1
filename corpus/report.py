"""`RUN_DIR/report/index.html`: a static, self-contained page (inline CSS, plots as inline PNG, no script).

Sections: target vs achieved shares per stratum variable, failed checks per rule and round,
duplicate-cluster sizes, attribute coverage per root category, narrative lengths, the
evaluation comparison when `populace evaluate` has run, and a few sample personas.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from corpus.run_folder import PERSONAS, REJECTS, VERDICTS, RunFolder
from foundation.atomic_files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLOT_COLOURS = ("#34495e", "#c0392b")


def _length_histogram(con: duckdb.DuckDBPyConnection, personas: str, bins: int = 20) -> tuple[list[float], list[int]]:
    """Narrative lengths in `bins` equal bins from the shortest to the longest (numpy's histogram
    edges), counted in the query: a million-persona corpus sends 20 counts, not a million lengths."""
    ((shortest, longest),) = con.sql(
        f"SELECT min(length(narrative)), max(length(narrative)) FROM {personas}"
    ).fetchall()
    if shortest is None:
        return [0.0, 1.0], [0]
    lo, hi = float(shortest), float(max(longest, shortest + 1))
    width = (hi - lo) / bins
    counted = dict(
        con.sql(
            f"SELECT least(floor((length(narrative) - {lo}) / {width}), {bins - 1})::INTEGER AS b, count(*) "
            f"FROM {personas} GROUP BY b"
        ).fetchall()
    )
    return [lo + i * width for i in range(bins + 1)], [counted.get(i, 0) for i in range(bins)]


def _figure_png(draw: Callable[[Axes], object]) -> str:
    """Run `draw(ax)` on a fresh figure; the PNG as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _grouped_bars(ax: Axes, labels: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(
            [x + i * width for x in range(len(labels))],
            values,
            width,
            label=name,
            color=PLOT_COLOURS[i % len(PLOT_COLOURS)],
        )
    ax.set_xticks(
        [x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, rotation=35, ha="right", fontsize=7
    )
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def stratum_shares(strata: dict[str, dict[str, int]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per stratum variable, value -> (target share, achieved share), from per-cell counts.

    Cell labels look like "age_band=18-24;sex=female" ("all" when there are no strata)."""
    requested_total = sum(c["requested"] for c in strata.values()) or 1
    produced_total = sum(c["produced"] for c in strata.values()) or 1
    out: dict[str, dict[str, list[float]]] = {}
    for label, counts in strata.items():
        for part in label.split(";"):
            variable, _, value = part.partition("=")
            if not value:
                continue
            shares = out.setdefault(variable, {}).setdefault(value, [0.0, 0.0])
            shares[0] += counts["requested"] / requested_total
            shares[1] += counts["produced"] / produced_total
    return {v: {k: (a, b) for k, (a, b) in values.items()} for v, values in out.items()}


def build_report(run: RunFolder, leaves_per_root: dict[str, int], samples: int = 5) -> str:
    """The report page of a finished run folder, as one HTML string."""
    manifest = run.read_manifest()
    sections: list[str] = [_summary(manifest)]
    con = duckdb.connect()
    try:
        for variable, shares in stratum_shares(manifest.get("strata", {})).items():
            labels = sorted(shares)
            sections.append(
                _plot_section(
                    f"Target vs achieved: {variable}",
                    partial(
                        _grouped_bars,
                        labels=labels,
                        series={"target": [shares[v][0] for v in labels], "achieved": [shares[v][1] for v in labels]},
                        ylabel="share",
                    ),
                )
            )
        if run.has_files(VERDICTS):
            verdicts = run.parquet_sql(VERDICTS)
            rows = con.sql(
                f'SELECT "check", round, count(*) FILTER (WHERE NOT passed) AS failed FROM {verdicts} '
                "WHERE severity = 'error' GROUP BY ALL HAVING failed > 0 ORDER BY 1, 2"
            ).fetchall()
            if rows:
                checks = sorted({r[0] for r in rows})
                rounds = sorted({r[1] for r in rows})
                failed = {(c, r): n for c, r, n in rows}
                sections.append(
                    _plot_section(
                        "Failed checks per rule and round",
                        lambda ax: _grouped_bars(
                            ax,
                            checks,
                            {f"round {r}": [failed.get((c, r), 0) for c in checks] for r in rounds},
                            "records",
                        ),
                    )
                )
        if run.has_files(REJECTS):
            rejects = run.parquet_sql(REJECTS)
            sizes = [
                r[0]
                for r in con.sql(
                    f"SELECT 1 + count(*) FROM {rejects} WHERE stage = 'dedup' GROUP BY duplicate_of"
                ).fetchall()
            ]
            if sizes:
                sections.append(
                    _plot_section(
                        "Duplicate-cluster sizes (kept record + removed copies)",
                        lambda ax: (
                            ax.hist(sizes, bins=range(2, max(sizes) + 2), color=PLOT_COLOURS[0]),
                            ax.set_xlabel("records in cluster"),
                        ),
                    )
                )
        if run.has_files(PERSONAS):
            # Facts read as their {key, value} entries: making maps of them costs more than the queries.
            personas = run.parquet_sql(PERSONAS)
            used = dict(
                con.sql(
                    f"SELECT split_part(k, '.', 1), count(DISTINCT k) FROM (SELECT "
                    f"unnest(attributes).key AS k FROM {personas}) GROUP BY 1"
                ).fetchall()
            )
            roots = sorted(leaves_per_root)
            sections.append(
                _plot_section(
                    "Attribute coverage per root category (leaves used / leaves)",
                    lambda ax: _grouped_bars(
                        ax, roots, {"coverage": [used.get(r, 0) / leaves_per_root[r] for r in roots]}, "share"
                    ),
                )
            )
            edges, counts = _length_histogram(con, personas)
            sections.append(
                _plot_section(
                    "Narrative lengths (characters)",
                    lambda ax: (
                        ax.hist(edges[:-1], bins=edges, weights=counts, color=PLOT_COLOURS[0]),
                        ax.set_xlabel("characters"),
                    ),
                )
            )
            picked = con.sql(
                f"SELECT persona_id, stratum, name, narrative, attributes FROM {personas} "
                f"ORDER BY hash(persona_id) LIMIT {int(samples)}"
            ).fetchall()
            sections.append(_samples(picked))
    finally:
        con.close()
    comparison = run.evaluation / "comparison.png"
    if comparison.is_file():
        uri = "data:image/png;base64," + base64.b64encode(comparison.read_bytes()).decode()
        sections.append(f'<h2>Quality beside reference corpora</h2><img alt="evaluation comparison" src="{uri}">')
    title = html.escape(f"populace run {manifest.get('run_id', run.root.name)}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>"
    )


def write_report(run: RunFolder, leaves_per_root: dict[str, int]) -> Path:
    path = run.report_page
    with atomic_path(path) as tmp:
        tmp.write_text(build_report(run, leaves_per_root), encoding="utf-8")
    return path


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "img{max-width:100%}.persona{border-left:4px solid #34495e;padding:.2em 1em;margin:1em 0}"
    ".facts{color:#666;font-size:.85em}"
)


def _plot_section(title: str, draw: Callable[[Axes], object]) -> str:
    return f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="{_figure_png(draw)}">'


def _summary(manifest: dict[str, Any]) -> str:
    keys = (
        "requested",
        "produced",
        "rejected",
        "backfilled",
        "acceptance_rate",
        "completion_tokens_per_persona",
        "tokens_spent",
        "backend_retries",
        "backfill_stopped_by",
        "last_run_seconds",
    )
    rows = "".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(str(manifest[k]))}</td></tr>"
        for k in keys
        if k in manifest
    )
    reasons = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v}</td></tr>"
        for k, v in manifest.get("rejected_by_reason", {}).items()
    )
    return f"<h2>Summary</h2><table>{rows}</table>" + (
        f"<h3>Rejected by reason</h3><table>{reasons}</table>" if reasons else ""
    )


def _samples(rows: list[tuple[Any, ...]]) -> str:
    parts = ["<h2>Sample personas</h2>"]
    for persona_id, stratum, name, narrative, attributes in rows:
        facts = ", ".join(f"{fact['key'].split('.')[-1]}={fact['value']}" for fact in attributes[:10])
        parts.append(
            f'<div class="persona"><h3>{html.escape(name)} <small>{html.escape(persona_id)} · '
            f"{html.escape(stratum)}</small></h3><p>{html.escape(narrative)}</p>"
            f'<p class="facts">{html.escape(facts)}, …</p></div>'
        )
    return "".join(parts)

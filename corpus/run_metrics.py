"""What a finished run produced, read back from its Parquet files with DuckDB."""

from __future__ import annotations

from typing import Any

import duckdb

from corpus.run_folder import PERSONAS, PROPOSALS, REJECTS, SETTLED, SKELETONS, VERDICTS, RunFolder


def tokens_spent(run: RunFolder) -> int:
    """Prompt plus completion tokens of every proposal written so far (all waves and rounds)."""
    if not run.has_files(PROPOSALS):
        return 0
    with duckdb.connect() as con:
        total: int = con.sql(
            f"SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM {run.parquet_sql(PROPOSALS)}"
        ).fetchall()[0][0]
        return total


def summarize_run(run: RunFolder, requested_by_stratum: dict[str, int]) -> dict[str, Any]:
    """Counts, rejects by reason, tokens, retries, per-stratum fill and per-rule violation rates."""
    con = duckdb.connect()
    try:

        def scalar(sql: str) -> int:
            value: int | None = con.sql(sql).fetchall()[0][0]
            return value or 0

        personas, rejects = run.parquet_sql(PERSONAS), run.parquet_sql(REJECTS)
        settled = run.parquet_sql(SETTLED)
        produced = scalar(f"SELECT count(*) FROM {personas}")
        by_reason = dict(
            con.sql(
                f"SELECT CASE WHEN stage = 'dedup' THEN 'duplicate' ELSE reason END AS r, count(*) FROM {rejects} "
                "GROUP BY r ORDER BY r"
            ).fetchall()
        )
        produced_by_stratum = dict(con.sql(f"SELECT stratum, count(*) FROM {personas} GROUP BY 1").fetchall())
        violations = con.sql(
            f'SELECT round, "check", severity, count(*) AS checked, count(*) FILTER (WHERE NOT passed) AS failed '
            f'FROM {run.parquet_sql(VERDICTS)} GROUP BY ALL ORDER BY round, "check"'
        ).fetchall()
        completion_tokens = scalar(f"SELECT sum(completion_tokens) FROM {settled}")
        redraws = dict(
            con.sql(
                f"SELECT r, count(*) FROM (SELECT unnest(redraws) AS r FROM "
                f"{run.parquet_sql(SKELETONS)}) GROUP BY r ORDER BY r"
            ).fetchall()
        )
        return {
            "produced": produced,
            "rejected": sum(by_reason.values()),
            "rejected_by_reason": by_reason,
            "acceptance_rate": round(produced / max(1, scalar(f"SELECT count(*) FROM {settled}")), 4),
            "prompt_tokens": scalar(f"SELECT sum(prompt_tokens) FROM {settled}"),
            "completion_tokens": completion_tokens,
            "completion_tokens_per_persona": round(completion_tokens / max(1, produced), 1),
            "revised": scalar(f"SELECT count(*) FROM {settled} WHERE rounds > 1"),
            "constraint_redraws": redraws,
            "backend_retries": scalar(f"SELECT sum(retries) FROM {run.parquet_sql(PROPOSALS)}"),
            "strata": {
                s: {"requested": n, "produced": produced_by_stratum.get(s, 0)}
                for s, n in sorted(requested_by_stratum.items())
            },
            "rule_violations": [
                {"round": r, "check": c, "severity": sev, "checked": n, "failed": f, "rate": round(f / n, 4)}
                for r, c, sev, n, f in violations
            ],
        }
    finally:
        con.close()

"""What a finished run produced, read back from its Parquet files with DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb


def _parquet(root: Path, pattern: str) -> str:
    return "read_parquet('" + str(root / pattern).replace("'", "''") + "', union_by_name = true)"


def tokens_spent(root: Path) -> int:
    """Prompt plus completion tokens of every proposal written so far (all waves and rounds)."""
    if not any(root.glob("proposals/round-*/part-*.parquet")):
        return 0
    with duckdb.connect() as con:
        return con.sql(
            f"SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) "
            f"FROM {_parquet(root, 'proposals/round-*/part-*.parquet')}"
        ).fetchall()[0][0]


def summarize_run(root: Path, requested_by_stratum: dict[str, int]) -> dict:
    """Counts, rejects by reason, tokens, retries, per-stratum fill and per-rule violation rates."""
    con = duckdb.connect()
    try:

        def scalar(sql: str) -> int:
            return con.sql(sql).fetchall()[0][0] or 0

        personas, rejects = _parquet(root, "personas/part-*.parquet"), _parquet(root, "rejects/part-*.parquet")
        settled = _parquet(root, "settled/part-*.parquet")
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
            f'FROM {_parquet(root, "verdicts/round-*/part-*.parquet")} GROUP BY ALL ORDER BY round, "check"'
        ).fetchall()
        completion_tokens = scalar(f"SELECT sum(completion_tokens) FROM {settled}")
        redraws = dict(
            con.sql(
                f"SELECT r, count(*) FROM (SELECT unnest(redraws) AS r FROM "
                f"{_parquet(root, 'skeletons/part-*.parquet')}) GROUP BY r ORDER BY r"
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
            "backend_retries": scalar(f"SELECT sum(retries) FROM {_parquet(root, 'proposals/round-*/part-*.parquet')}"),
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

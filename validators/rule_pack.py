"""Declarative rule packs (YAML), evaluated in bulk as DuckDB predicates over an Arrow table."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.errors import UserInputError

PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    severity: Literal["error", "warning"]
    when: str = Field(min_length=1, description="SQL predicate, TRUE when the record violates the rule.")
    message: str = Field(description="Feedback for the reviser; {column} placeholders are filled.")


def load_rule_pack(path: str | Path | None = None) -> list[Rule]:
    """The shipped core pack by default, or a user YAML file."""
    if path is None:
        where, text = "validators/rules/core.yaml", (
            resources.files("validators").joinpath("rules", "core.yaml").read_text(encoding="utf-8"))
    else:
        where, text = str(path), Path(path).read_text(encoding="utf-8")
    try:
        rules = TypeAdapter(list[Rule]).validate_python(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise UserInputError(where, "<rules>", f"not a valid rule pack ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]})", "each rule needs id, severity, when, message") from exc
    ids = [r.id for r in rules]
    if len(ids) != len(set(ids)):
        raise UserInputError(where, "id", "duplicate rule ids", "give each rule a unique id")
    return rules


def _show(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def fill_message(template: str, row: dict) -> str:
    return PLACEHOLDER.sub(lambda m: _show(row[m.group(1)]) if m.group(1) in row else m.group(0), template)


def evaluate_rules(table: pa.Table, rules: list[Rule]) -> list[tuple[str, Rule, str]]:
    """Return (persona_id, rule, filled message) for every violation, one query per rule."""
    con = duckdb.connect()
    try:
        con.register("candidates", table)
        violations = []
        for rule in rules:
            try:
                rows = con.sql(f"SELECT * FROM candidates WHERE coalesce(({rule.when}), false)").to_arrow_table()
            except duckdb.Error as exc:
                raise UserInputError("rule pack", f"{rule.id}.when", f"SQL error: {exc}",
                                     "refer only to columns listed at the top of the rule pack") from exc
            for row in rows.to_pylist():
                violations.append((row["persona_id"], rule, fill_message(rule.message, row)))
        return violations
    finally:
        con.close()

"""Declarative rule packs (YAML), evaluated in bulk as DuckDB predicates over an Arrow table."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from foundation.yaml_text import load_yaml
from schemas.errors import UserInputError

PLACEHOLDER = re.compile(r"\{(\w+)\}")
PROPOSAL_FIELDS = ("name", "narrative")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    severity: Literal["error", "warning"]
    when: str = Field(min_length=1, description="SQL predicate, TRUE when the record violates the rule.")
    message: str = Field(description="Feedback for the reviser; {column} placeholders are filled.")
    pack: str = Field(default="", description="The file the rule came from (set by the loader).")
    fields: list[Literal["name", "narrative"]] = Field(
        default_factory=list,
        description="The proposal fields the rule is about, named in its revise feedback; empty: the fields "
        "its `when` mentions (narrative when it mentions neither).",
    )
    scope: Literal["prose", "facts"] = Field(
        default="prose",
        description="facts: the rule reads sampled facts only, so it is enforced when sampling (the slot is "
        "redrawn) rather than sent to the LLM, which cannot change facts.",
    )

    def concerns(self) -> tuple[str, ...]:
        if self.fields:
            return tuple(self.fields)
        named = tuple(f for f in PROPOSAL_FIELDS if re.search(rf"\b{f}\b", self.when))
        return named or ("narrative",)


def concerned_fields(message: str) -> set[str]:
    """The proposal fields a feedback line is about ("narrative: ..."); every field when it names none."""
    head = message.split(":", 1)[0]
    named = {f for f in head.split("/") if f in PROPOSAL_FIELDS}
    return named or set(PROPOSAL_FIELDS)


def field_message(fields: tuple[str, ...], message: str | None) -> str | None:
    """Feedback that says which fields to change: "narrative: The narrative states age 31, ..."."""
    return f"{'/'.join(fields)}: {message}" if message is not None and fields else message


# Checks implemented in code rather than SQL; listed beside the packs by `populace rules list`.
BUILTIN_CHECKS = [
    {
        "id": "schema",
        "severity": "error",
        "pack": "builtin",
        "what": "the output is one JSON object matching the Proposal schema",
    },
    {"id": "backend", "severity": "error", "pack": "builtin", "what": "the backend answered at all"},
    {
        "id": "taxonomy:applicable_when",
        "severity": "error",
        "pack": "builtin",
        "what": "every fact applies under the taxonomy's applicable_when conditions",
    },
    {
        "id": "fidelity:age",
        "severity": "error",
        "pack": "builtin",
        "what": "no age stated in the prose differs from the sampled age",
    },
    {
        "id": "fidelity:occupation",
        "severity": "error",
        "pack": "builtin",
        "what": "no present-tense job in the prose differs from the sampled occupation",
    },
    {
        "id": "fidelity:place",
        "severity": "error",
        "pack": "builtin",
        "what": "the prose places the person in no other state than the sampled one, and names no US state "
        "outside the sampled census region",
    },
    {
        "id": "fidelity:gender",
        "severity": "error",
        "pack": "builtin",
        "what": "the prose does not refer to the person with the other gender's pronouns or nouns",
    },
    {
        "id": "fidelity:traits",
        "severity": "error",
        "pack": "builtin",
        "what": "the prose does not describe the person against a sampled Big Five level",
    },
    {
        "id": "fidelity:reflects",
        "severity": "error",
        "pack": "builtin",
        "what": "the prose states the sampled age and occupation (the opening sentence written from the facts does)",
    },
    {
        "id": "fidelity:name",
        "severity": "error",
        "pack": "builtin",
        "what": "the prose calls the person by their sampled name, not another first name",
    },
]


def _read_pack(where: str, text: str, pack: str) -> list[Rule]:
    if not text.strip():
        raise UserInputError(where, "<rules>", "is empty", "write a YAML list of rules (id, severity, when, message)")
    try:
        raw = load_yaml(text)
        rules = TypeAdapter(list[Rule]).validate_python(
            [{**r, "pack": pack} if isinstance(r, dict) else r for r in raw or []]
        )
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise UserInputError(
            where,
            "<rules>",
            f"not a valid rule pack ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
            "each rule needs id, severity, when, message",
        ) from exc
    return rules


def load_rule_pack(path: str | Path | None = None) -> list[Rule]:
    """Every shipped pack by default; or one YAML file, or every *.yaml in a folder."""
    if path is None:
        return list(_shipped_rules())  # read once per process: every shard of a build asks for it
    return _read_rules(Path(path))


@functools.cache
def _shipped_rules() -> tuple[Rule, ...]:
    return tuple(_read_rules(None))


def list_checks() -> list[dict[str, str]]:
    """Every check a persona must pass, as rows: the built-in prose checks, then the rule packs' rules."""
    return [
        *({**check, "scope": "prose"} for check in BUILTIN_CHECKS),
        *(
            {"id": r.id, "severity": r.severity, "pack": r.pack, "scope": r.scope, "what": r.message}
            for r in load_rule_pack()
        ),
    ]


def _read_rules(path: Path | None) -> list[Rule]:
    if path is None:
        folder = resources.files("validators").joinpath("rules")
        sources = [
            (f"validators/rules/{f.name}", f.read_text(encoding="utf-8"), f.name.removesuffix(".yaml"))
            for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")
        ]
    else:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise UserInputError(str(path), "<rules>", "no rule pack found", "pass a .yaml file or a folder of them")
        sources = [(str(f), f.read_text(encoding="utf-8"), f.stem) for f in files]
    rules = [rule for where, text, pack in sources for rule in _read_pack(where, text, pack)]
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UserInputError(
            str(path or "validators/rules"),
            "id",
            f"duplicate rule ids {duplicates}",
            "give each rule a unique id across packs",
        )
    return rules


def _show(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def fill_message(template: str, row: dict[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: _show(row[m.group(1)]) if m.group(1) in row else m.group(0), template)


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB: connecting costs ~20 ms, a cursor on it (a connection of its
    own, with its own registered tables) microseconds, and rules run for every shard sampled or
    validated."""
    return duckdb.connect()


def _matching_rows(table: pa.Table, rules: list[Rule], columns: str) -> list[tuple[Rule, pa.Table]]:
    """Per rule, the rows of `table` (only `columns`) for which its predicate is TRUE.

    Every predicate is one column of a single query: one scan and one bind per batch instead of
    one per rule (the per-query overhead dominated validation)."""
    if not rules:
        return []
    con = _database().cursor()
    try:
        con.register("candidates", table)
        flags = ", ".join(f"coalesce(({rule.when}), false) AS __rule_{i}" for i, rule in enumerate(rules))
        try:
            scored = con.sql(f"SELECT {columns}, {flags} FROM candidates").to_arrow_table()
        except duckdb.Error:
            _raise_for_broken_rule(con, rules)
            raise
        kept = scored.select([name for name in scored.column_names if not name.startswith("__rule_")])
        return [(rule, kept.filter(scored.column(f"__rule_{i}"))) for i, rule in enumerate(rules)]
    finally:
        con.close()


def _raise_for_broken_rule(con: duckdb.DuckDBPyConnection, rules: list[Rule]) -> None:
    """Name the rule whose SQL fails (the combined query's error does not say which one)."""
    for rule in rules:
        try:
            con.sql(f"SELECT coalesce(({rule.when}), false) FROM candidates LIMIT 0").fetchall()
        except duckdb.Error as exc:
            raise UserInputError(
                "rule pack",
                f"{rule.id}.when",
                f"SQL error: {exc}",
                "refer only to columns listed at the top of the rule pack",
            ) from exc


def evaluate_rules(table: pa.Table, rules: list[Rule]) -> list[tuple[str, Rule, str]]:
    """Return (persona_id, rule, filled message) for every violation, one query per rule."""
    return [
        (row["persona_id"], rule, fill_message(rule.message, row))
        for rule, rows in _matching_rows(table, rules, "*")
        for row in rows.to_pylist()
    ]


def violating_ids(table: pa.Table, rules: list[Rule]) -> list[tuple[str | int, Rule]]:
    """(persona_id, rule) for every violation, without filling messages (for large batches)."""
    return [
        (pid, rule)
        for rule, rows in _matching_rows(table, rules, "persona_id")
        for pid in rows.column("persona_id").to_pylist()
    ]

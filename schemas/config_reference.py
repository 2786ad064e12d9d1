"""The config reference (docs/config-reference.md), generated from the JSON schemas of the config models."""

from __future__ import annotations

from typing import Any

from schemas.config import RunConfig
from schemas.mining_config import MiningConfig


def _type_of(spec: dict[str, Any] | bool, defs: dict[str, Any]) -> str:
    if not isinstance(spec, dict):  # additionalProperties: true (a free-form map)
        return "any"
    if "$ref" in spec:
        return f"[{spec['$ref'].rsplit('/', 1)[-1]}](#{spec['$ref'].rsplit('/', 1)[-1].lower()})"
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if "anyOf" in spec:
        return " or ".join(_type_of(s, defs) for s in spec["anyOf"])
    if spec.get("type") == "array":
        return f"list of {_type_of(spec.get('items', {}), defs)}"
    if spec.get("type") == "object" and "additionalProperties" in spec:
        return f"map of {_type_of(spec['additionalProperties'], defs)}"
    kind: str = spec.get("type", "any")
    return kind


def _bounds(spec: dict[str, Any]) -> str:
    parts = [
        f"{label} {spec[key]}"
        for key, label in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in spec
    ]
    if "pattern" in spec:
        parts.append(f"pattern `{spec['pattern']}`")
    return ", ".join(parts)


def _table(title: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        schema.get("description", "").strip(),
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, spec in schema.get("properties", {}).items():
        default = spec.get("default", "(required)" if name in schema.get("required", []) else "")
        shown = f"`{default}`" if default not in ("", "(required)") else default
        description = " ".join(spec.get("description", "").split())
        bounds = _bounds(spec)
        lines.append(
            f"| `{name}` | {_type_of(spec, defs)} | {shown} | {description}{' (' + bounds + ')' if bounds else ''} |"
        )
    return [*lines, ""]


def config_reference() -> str:
    """Markdown: one table per config model, the run config and the mining config with their parts."""
    out = [
        "# Config reference",
        "",
        "Generated from the config models by `populace config reference`; a test keeps this file current.",
        "Every model refuses unknown keys. `populace config schema [--mining]` prints the JSON schema.",
        "",
    ]
    seen: set[str] = set()
    for title, model in (
        ("Run config (`populace build|sample|preview --config`)", RunConfig),
        ("Mining config (`populace mine --config`)", MiningConfig),
    ):
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        out += [f"## {title}", "", *_table(model.__name__, schema, defs)]
        for name, spec in defs.items():
            if name not in seen:
                seen.add(name)
                out += _table(name, spec, defs)
    return "\n".join(out).rstrip() + "\n"

"""Proposal prompts rendered from Jinja2 templates; the template hash goes into lineage."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import jinja2.sandbox

from schemas.records import Skeleton
from taxonomy.model import OCCUPATION_ID, Taxonomy
from taxonomy.opening import pronouns_for, write_opening

TURN_MARKER = re.compile(r"^---(user|assistant)---$", re.MULTILINE)


@lru_cache(maxsize=8)
def template_source(name: str = "propose.j2") -> str:
    return resources.files("workers").joinpath("templates", name).read_text(encoding="utf-8")


def template_hash(name: str = "propose.j2") -> str:
    return hashlib.sha256(template_source(name).encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _compiled(name: str) -> jinja2.Template:
    # Sandboxed: values come from taxonomy files and feedback text, never trusted as code.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
    return env.from_string(template_source(name))


def _messages(template: str, **values: Any) -> list[dict[str, str]]:
    """System text, then one turn per `---user---` / `---assistant---` marker (few-shot examples)."""
    system, *turns = TURN_MARKER.split(_compiled(template).render(**values))
    messages = [{"role": "system", "content": system.strip()}]
    messages += [{"role": role, "content": text.strip()} for role, text in zip(turns[::2], turns[1::2], strict=True)]
    return messages


def labelled_facts(attributes: dict[str, str], taxonomy: Taxonomy) -> list[tuple[str, str]]:
    labels = taxonomy.labels()
    return [(labels.get(k, k), v) for k, v in attributes.items()]


def render_judge_messages(
    attributes: dict[str, str], name: str, narrative: str, taxonomy: Taxonomy
) -> list[dict[str, str]]:
    return _messages("judge.j2", facts=labelled_facts(attributes, taxonomy), name=name, narrative=narrative)


def render_proposal_messages(
    skeleton: Skeleton, taxonomy: Taxonomy, feedback: list[str] | None = None
) -> list[dict[str, str]]:
    """Chat messages asking the LLM to continue the portrait that code opened from the facts."""
    known = taxonomy.attributes()
    open_topics = [(known[a].label, known[a].guidance) for a in skeleton.open_attributes if a in known]
    subject, possessive = pronouns_for(skeleton.attributes)
    return _messages(
        "propose.j2",
        facts=labelled_facts(skeleton.attributes, taxonomy),
        open_topics=open_topics,
        opening=write_opening(skeleton.name, skeleton.attributes),
        first_name=skeleton.name.split(" ")[0] if skeleton.name else "",
        subject=subject,
        possessive=possessive,
        occupation=skeleton.attributes.get(OCCUPATION_ID),
        feedback=feedback or [],
    )


def render_extraction_messages(sentence: str, categories: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Chat messages asking which attributes one (already scrubbed) sentence reveals about its writer."""
    return _messages("extract.j2", sentence=sentence, categories=categories)

"""Runtime records that move between stages. Frozen: a stage makes new ones, never edits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FrozenRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Skeleton(FrozenRecord):
    """One slot: its id, its stratum and the attribute values sampled for it (the facts)."""

    persona_id: str
    slot: int
    stratum: str
    attributes: dict[str, str]
    name: str = Field(default="", description="The sampled full name (a fact, like the attributes).")
    open_attributes: list[str] = Field(
        default_factory=list, description="Text attributes chosen for this persona that the LLM writes about."
    )


class ProseProposal(FrozenRecord):
    """What the LLM writes: the rest of a portrait whose first sentence code wrote from the facts."""

    narrative: str = Field(
        min_length=60,
        max_length=450,
        description="2-3 sentences in the third person continuing the portrait: daily life, work, what matters.",
    )


class Proposal(FrozenRecord):
    """A persona's prose: the sampled name, and the narrative (code's opening + the LLM's continuation)."""

    name: str = Field(
        min_length=3,
        max_length=60,
        pattern=r"^[A-Z][A-Za-z'-]{0,20}( [A-Z][A-Za-z'-]{0,20}){1,2}$",
        description="First and last name of the person (sampled).",
    )
    narrative: str = Field(
        min_length=80, max_length=600, description="Third-person portrait consistent with every fact."
    )


class JudgeScores(FrozenRecord):
    """The LLM judge's rubric for one persona."""

    plausibility: int = Field(ge=1, le=5, description="1-5: could this person exist?")
    consistency: int = Field(ge=1, le=5, description="1-5: does the narrative agree with every fact?")
    reason: str = Field(max_length=200, description="One short sentence.")


def proposal_json_schema() -> dict[str, Any]:
    """The JSON schema that constrains decoding: what the LLM writes, nothing else."""
    return ProseProposal.model_json_schema()

"""Runtime records that move between stages. Frozen: a stage makes new ones, never edits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FrozenRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Skeleton(FrozenRecord):
    """One slot: its id, its stratum and the attribute values sampled for it (the facts)."""

    persona_id: str
    slot: int
    stratum: str
    attributes: dict[str, str]
    open_attributes: list[str] = Field(
        default_factory=list, description="Text attributes chosen for this persona that the LLM writes about."
    )


class Proposal(FrozenRecord):
    """What the LLM writes. Facts are never asked back; only the prose is."""

    name: str = Field(
        min_length=3,
        max_length=60,
        # Bounded parts: the grammar llama.cpp builds from this pattern stops run-on names.
        pattern=r"^[A-Z][a-z'-]{1,14}( [A-Z][a-z'-]{1,14}){1,2}$",
        description="First and last name of the person.",
    )
    narrative: str = Field(
        min_length=80,
        max_length=600,
        description="Third-person portrait in 2-4 sentences consistent with every given fact.",
    )


class JudgeScores(FrozenRecord):
    """The LLM judge's rubric for one persona."""

    plausibility: int = Field(ge=1, le=5, description="1-5: could this person exist?")
    consistency: int = Field(ge=1, le=5, description="1-5: does the narrative agree with every fact?")
    reason: str = Field(max_length=200, description="One short sentence.")


def proposal_json_schema() -> dict:
    """The JSON schema that constrains decoding: the Proposal's fields, nothing else."""
    return Proposal.model_json_schema()

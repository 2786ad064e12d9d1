"""Taxonomy model: categories -> attributes -> value domains with priors and conditions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Attributes the pipeline reasons about by name (prompt wording, fidelity checks).
AGE_ID = "demographics.age"
OCCUPATION_ID = "work.occupation"
REGION_ID = "demographics.region"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Strict):
    """`attribute op value`; an attribute applies only when all its conditions hold."""

    attribute: str
    op: Literal["==", "!=", ">=", "<=", ">", "<", "in", "not_in"]
    value: float | str | list[str]


class ConditionalPrior(Strict):
    """Value weights of this attribute given the value of a parent attribute."""

    attribute: str
    table: dict[str, dict[str, float]]


class ConditionalRange(Strict):
    """Numeric bounds of this attribute given the value of a parent attribute."""

    attribute: str
    ranges: dict[str, tuple[float, float]]


class Attribute(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}$")
    label: str
    description: str = ""
    kind: Literal["categorical", "ordinal", "numeric", "text"]
    values: dict[str, float] = Field(default_factory=dict, description="Value -> prior weight.")
    minimum: float | None = None
    maximum: float | None = None
    guidance: str = Field(default="", description="For text attributes: what the LLM should write.")
    applicable_when: list[Condition] = Field(default_factory=list)
    depends_on: ConditionalPrior | None = None
    range_by: ConditionalRange | None = None
    provenance: Literal["seed", "mined"] = "seed"


class Category(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    attributes: list[Attribute]


class Taxonomy(Strict):
    name: str
    version: str
    categories: list[Category]
    content_hash: str = Field(default="", description="sha256 of the source file, set by the loader.")

    def attributes(self) -> dict[str, Attribute]:
        return {a.id: a for c in self.categories for a in c.attributes}

"""Taxonomy model: root categories -> subcategories -> attributes with value domains, priors and conditions.

Ids are path slugs: an attribute `health.sleep.chronotype` lives in subcategory `health.sleep` of
root `health`. Nodes nest up to three levels, so attribute paths are at most four parts long.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

# Attributes the pipeline reasons about by name (prompt wording, fidelity checks).
AGE_ID = "demographics.age"
OCCUPATION_ID = "work.occupation"
REGION_ID = "demographics.region"
STATE_ID = "demographics.state"
GENDER_ID = "demographics.gender"
SEX_ID = "demographics.sex"
RACE_ID = "demographics.race_ethnicity"
EMPLOYMENT_ID = "work.employment_status"

SLUG = r"[a-z][a-z0-9_]*"
MAX_NODE_DEPTH = 3
MAX_ATTRIBUTE_DEPTH = 4


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Strict):
    """`attribute op value`; an attribute applies only when all its conditions hold."""

    attribute: str
    op: Literal["==", "!=", ">=", "<=", ">", "<", "in", "not_in"]
    value: float | str | list[str]

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        """`in`/`not_in` take a list, an ordering takes a number, `==`/`!=` one value."""
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a list of values, e.g. [a, b]")
        if self.op in (">=", "<=", ">", "<") and not isinstance(self.value, int | float):
            raise ValueError(f"'{self.op}' needs a number")
        if self.op in ("==", "!=") and isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs one value; use in/not_in for a list")
        return self


class ConditionalPrior(Strict):
    """Value weights of this attribute given the value of a parent attribute."""

    attribute: str
    table: dict[str, dict[str, float]]


class ConditionalRange(Strict):
    """Numeric bounds of this attribute given the value of a parent attribute."""

    attribute: str
    ranges: dict[str, tuple[float, float]]


class Provenance(Strict):
    """Where an attribute comes from: curated seed or mined, with its evidence."""

    source: Literal["seed", "mined"] = "seed"
    support: int = Field(default=0, ge=0, description="Conversations that revealed this attribute (mined).")
    source_ids: list[str] = Field(
        default_factory=list, description="Hashed ids of those conversations; raw ids and text are never kept."
    )
    citation: str = Field(default="", description="Table and year the priors come from, e.g. 'ACS 2022 B01001'.")


class Attribute(Strict):
    id: str = Field(pattern=rf"^{SLUG}(\.{SLUG}){{1,{MAX_ATTRIBUTE_DEPTH - 1}}}$")
    label: str = Field(min_length=1)
    description: str = ""
    kind: Literal["categorical", "ordinal", "numeric", "text"]
    core: bool = Field(
        default=False,
        description="Sampled for every persona. Other attributes are chosen per persona by deep selection.",
    )
    scale: str | None = Field(default=None, description="Name of a shared scale in `scales` that gives the values.")
    values: dict[str, float] = Field(default_factory=dict, description="Value -> prior weight (sums to 1).")
    minimum: float | None = None
    maximum: float | None = None
    guidance: str = Field(default="", description="For text attributes: what the LLM should write.")
    applicable_when: list[Condition] = Field(default_factory=list)
    depends_on: ConditionalPrior | None = None
    range_by: ConditionalRange | None = None
    provenance: Provenance = Field(default_factory=Provenance)

    @property
    def root(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def has_prior(self) -> bool:
        """An explicit value domain with priors (text attributes have guidance instead)."""
        return self.kind != "text"


class Node(Strict):
    """A root category or a subcategory; holds attributes and further subcategories."""

    id: str = Field(pattern=rf"^{SLUG}(\.{SLUG}){{0,{MAX_NODE_DEPTH - 1}}}$")
    label: str = Field(min_length=1)
    description: str = ""
    attributes: list[Attribute] = Field(default_factory=list)
    subcategories: list[Node] = Field(default_factory=list)

    def walk(self) -> list[Node]:
        """This node and every node below it, depth first."""
        return [self] + [n for sub in self.subcategories for n in sub.walk()]


class Taxonomy(Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    scales: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Named value domains with priors that attributes share via `scale`."
    )
    categories: list[Node]
    content_hash: str = Field(default="", description="sha256 of the canonical content, set by the loader.")
    _attributes: dict[str, Attribute] = PrivateAttr(default_factory=dict)
    _labels: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        self._attributes = {a.id: a for root in self.categories for node in root.walk() for a in node.attributes}
        self._labels = {attr_id: a.label for attr_id, a in self._attributes.items()}

    def attributes(self) -> dict[str, Attribute]:
        return self._attributes

    def labels(self) -> dict[str, str]:
        """Attribute id -> label (every prompt lists each fact by its label)."""
        return self._labels

    def nodes(self) -> list[Node]:
        return [node for root in self.categories for node in root.walk()]

    def leaves_by_root(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {root.id: [] for root in self.categories}
        for attr in self._attributes.values():
            grouped[attr.root].append(attr.id)
        return grouped

    def core_ids(self) -> list[str]:
        """Attributes every persona gets; a taxonomy that marks none treats all as core."""
        marked = [a.id for a in self._attributes.values() if a.core]
        return marked or list(self._attributes)

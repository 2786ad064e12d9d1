"""Quota planning: integer slot counts per stratum cell that sum exactly to N."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.config import QuotaConfig, RunConfig, StratumVariable
from schemas.errors import UserInputError
from taxonomy.loader import sampling_order
from taxonomy.model import Taxonomy
from taxonomy.presets import load_preset
from taxonomy.raking import MarginTarget, rake

MAX_JOINT_CELLS = 2_000_000


@dataclass(frozen=True)
class QuotaCell:
    """One joint cell of the strata: its fixed attribute values, target share and slot count."""

    values: tuple[tuple[str, str], ...]
    share: float
    count: int

    @property
    def label(self) -> str:
        return ";".join(f"{attr.split('.')[-1]}={value}" for attr, value in self.values) or "all"


@dataclass(frozen=True)
class Marginal:
    """Target shares over the joint values of some stratum attributes."""

    attributes: tuple[str, ...]
    shares: dict[tuple[str, ...], float]
    source: str


def allocate_largest_remainder(shares: list[float], total: int) -> list[int]:
    """Hamilton's method: floor each exact quota, then hand out what is left by largest remainder."""
    exact = [s * total for s in shares]
    counts = [math.floor(q) for q in exact]
    left = total - sum(counts)
    # Ties go to the earlier cell so the allocation is deterministic; remainders are rounded so
    # that float noise from raking (0.4999999999 vs 0.5) does not decide a tie.
    order = sorted(range(len(shares)), key=lambda i: (-round(exact[i] - counts[i], 9), i))
    for i in order[:left]:
        counts[i] += 1
    return counts


def allocate(shares: list[float], total: int, min_per_cell: int = 0) -> list[int]:
    """Integer counts summing to `total`; every positive cell gets at least `min_per_cell`."""
    positive = [s > 0 for s in shares]
    reserved = min_per_cell * sum(positive)
    if reserved > total:
        raise UserInputError(
            "run config",
            "quotas.min_per_cell",
            f"{sum(positive)} cells x {min_per_cell} = {reserved} slots, more than population {total}",
            "lower min_per_cell, use fewer strata or raise population",
        )
    rest = allocate_largest_remainder(shares, total - reserved)
    return [count + (min_per_cell if pos else 0) for count, pos in zip(rest, positive, strict=True)]


def _check_attribute(attr_id: str, taxonomy: Taxonomy, field: str) -> None:
    attr = taxonomy.attributes().get(attr_id)
    if attr is None:
        raise UserInputError(
            "run config",
            field,
            f"'{attr_id}' is not in taxonomy {taxonomy.name}",
            "use a categorical or ordinal attribute id from the taxonomy",
        )
    if attr.kind not in ("categorical", "ordinal"):
        raise UserInputError(
            "run config",
            field,
            f"'{attr_id}' is {attr.kind}; strata need categories",
            "stratify on a categorical or ordinal attribute (e.g. an age band)",
        )


def collect_marginals(strata: list[StratumVariable], taxonomy: Taxonomy, quotas: QuotaConfig) -> list[Marginal]:
    known = taxonomy.attributes()
    marginals = []
    for i, variable in enumerate(strata):
        _check_attribute(variable.attribute, taxonomy, f"strata.{i}.attribute")
        unknown = sorted(set(variable.shares) - set(known[variable.attribute].values))
        if unknown:
            raise UserInputError(
                "run config",
                f"strata.{i}.shares",
                f"values {unknown} are not in {variable.attribute}'s domain",
                f"use values from {sorted(known[variable.attribute].values)}",
            )
        marginals.append(Marginal((variable.attribute,), {(v,): s for v, s in variable.shares.items()}, f"strata.{i}"))
    if quotas.preset:
        preset = load_preset(quotas.preset, taxonomy)
        wanted = set(quotas.variables)
        used: set[str] = set()
        for j, table in enumerate(preset.marginals):
            # A table over more attributes than requested is summed down to the requested ones.
            keep = tuple(a for a in table.attributes if a in wanted)
            if not keep:
                continue
            positions = [table.attributes.index(a) for a in keep]
            shares: dict[tuple[str, ...], float] = {}
            for key, share in table.cells().items():
                sub = tuple(key[p] for p in positions)
                shares[sub] = shares.get(sub, 0.0) + share
            marginals.append(Marginal(keep, shares, f"preset {preset.name} marginals.{j} ({table.citation})"))
            used.update(keep)
        for i, attr_id in enumerate(quotas.variables):
            _check_attribute(attr_id, taxonomy, f"quotas.variables.{i}")
            if attr_id not in used:
                raise UserInputError(
                    "run config",
                    f"quotas.variables.{i}",
                    f"preset {preset.name} has no table over '{attr_id}'",
                    "stratify on attributes the preset has tables for",
                )
    return marginals


def _check_consistent(marginals: list[Marginal]) -> None:
    """Two tables that share an attribute must give it the same shares."""
    for i, first in enumerate(marginals):
        for second in marginals[i + 1 :]:
            for attr_id in set(first.attributes) & set(second.attributes):
                a, b = _collapse(first, attr_id), _collapse(second, attr_id)
                for value in set(a) | set(b):
                    if abs(a.get(value, 0.0) - b.get(value, 0.0)) > 1e-3:
                        raise UserInputError(
                            "run config",
                            f"{first.source} / {second.source}",
                            f"give {attr_id}={value} shares {a.get(value, 0.0):.4f} and {b.get(value, 0.0):.4f}",
                            "make the tables agree on shared attributes",
                        )


def _drop_implied(marginals: list[Marginal]) -> list[Marginal]:
    """A table over a subset of another table's attributes is implied by it (and, once rounded,
    would only keep raking from converging exactly)."""
    kept = []
    for i, marginal in enumerate(marginals):
        covered = any(
            set(marginal.attributes) < set(other.attributes)
            or (set(marginal.attributes) == set(other.attributes) and j < i)
            for j, other in enumerate(marginals)
            if j != i
        )
        if not covered:
            kept.append(marginal)
    return kept


def _collapse(marginal: Marginal, attr_id: str) -> dict[str, float]:
    index = marginal.attributes.index(attr_id)
    out: dict[str, float] = {}
    for key, share in marginal.shares.items():
        out[key[index]] = out.get(key[index], 0.0) + share
    return out


def seed_from_taxonomy(variables: list[str], domains: list[list[str]], taxonomy: Taxonomy) -> np.ndarray:
    """Prior joint of the stratum variables: marginal priors, conditioned through depends_on
    where the parent is itself a stratum variable (so age x education starts realistic)."""
    known = taxonomy.attributes()
    table = np.ones([len(d) for d in domains])
    order = [a for a in sampling_order(taxonomy) if a in variables]
    for attr_id in order:
        axis = variables.index(attr_id)
        attr = known[attr_id]
        depends_on = attr.depends_on
        if depends_on is not None and depends_on.attribute in variables:
            p_axis = variables.index(depends_on.attribute)
            cond = np.array([[depends_on.table[pv].get(v, 0.0) for v in domains[axis]] for pv in domains[p_axis]])
            shape = [1] * table.ndim
            shape[p_axis], shape[axis] = cond.shape
            table = table * (cond.reshape(shape) if p_axis < axis else cond.T.reshape(shape))
        else:
            weights = np.array([attr.values[v] for v in domains[axis]])
            shape = [1] * table.ndim
            shape[axis] = len(weights)
            table = table * weights.reshape(shape)
    return table


def seed_from_csv(path: str, variables: list[str], domains: list[list[str]]) -> np.ndarray:
    table = np.zeros([len(d) for d in domains])
    index = [{v: i for i, v in enumerate(d)} for d in domains]
    file = Path(path)
    if not file.is_file():
        raise UserInputError(path, "quotas.seed_table", "no such file", "give a CSV path")
    with open(file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in [*variables, "weight"] if c not in (reader.fieldnames or [])]
        if missing:
            raise UserInputError(
                path,
                "header",
                f"missing columns {missing}",
                "one column per stratum attribute id and a 'weight' column",
            )
        for line, row in enumerate(reader, start=2):
            try:
                cell = tuple(index[i][row[v]] for i, v in enumerate(variables))
                table[cell] += float(row["weight"])
            except (KeyError, ValueError) as exc:
                raise UserInputError(
                    path,
                    f"line {line}",
                    f"unknown value or bad weight ({exc})",
                    "use taxonomy values and numeric weights",
                ) from exc
    return table


def plan_quotas(
    strata: list[StratumVariable], taxonomy: Taxonomy, population: int, quotas: QuotaConfig | None = None
) -> list[QuotaCell]:
    """Joint cells with exact integer counts: from joint shares, or raked from marginals."""
    quotas = quotas or QuotaConfig()
    if quotas.joint:
        if strata:
            raise UserInputError(
                "run config", "quotas.joint", "joint cells and strata marginals both given", "give one of them"
            )
        variables = sorted(quotas.joint[0].values)
        for attr_id in variables:
            _check_attribute(attr_id, taxonomy, f"quotas.joint.0.values.{attr_id}")
            for j, cell in enumerate(quotas.joint):
                if cell.values[attr_id] not in taxonomy.attributes()[attr_id].values:
                    raise UserInputError(
                        "run config",
                        f"quotas.joint.{j}.values.{attr_id}",
                        f"'{cell.values[attr_id]}' is not a value of {attr_id}",
                        f"use values from {sorted(taxonomy.attributes()[attr_id].values)}",
                    )
        combos = [tuple((a, c.values[a]) for a in variables) for c in quotas.joint]
        shares = [c.share for c in quotas.joint]
    else:
        marginals = collect_marginals(strata, taxonomy, quotas)
        if not marginals:
            return [QuotaCell(values=(), share=1.0, count=population)]
        _check_consistent(marginals)
        combos, shares = _rake_marginals(_drop_implied(marginals), taxonomy, quotas)
    counts = allocate(shares, population, quotas.min_per_cell)
    return [
        QuotaCell(values=combo, share=share, count=count)
        for combo, share, count in zip(combos, shares, counts, strict=True)
        if share > 0 or count > 0
    ]


def _rake_marginals(
    marginals: list[Marginal], taxonomy: Taxonomy, quotas: QuotaConfig
) -> tuple[list[tuple[tuple[str, str], ...]], list[float]]:
    variables = list(dict.fromkeys(a for m in marginals for a in m.attributes))
    known = taxonomy.attributes()
    domains = [sorted(known[a].values) for a in variables]
    size = math.prod(len(d) for d in domains)
    if size > MAX_JOINT_CELLS:
        raise UserInputError(
            "run config",
            "strata",
            f"{size:,} joint cells is too many",
            f"stratify on fewer or coarser attributes (at most {MAX_JOINT_CELLS:,} cells)",
        )
    seed = (
        seed_from_csv(quotas.seed_table, variables, domains)
        if quotas.seed_table
        else seed_from_taxonomy(variables, domains, taxonomy)
    )
    targets = []
    for marginal in marginals:
        axes = tuple(variables.index(a) for a in marginal.attributes)
        order = sorted(range(len(axes)), key=lambda k: axes[k])  # projections come out in axis order
        sorted_axes = tuple(axes[k] for k in order)
        target_shares = np.zeros([len(domains[a]) for a in sorted_axes])
        for key, share in marginal.shares.items():
            target_shares[tuple(domains[axes[k]].index(key[k]) for k in order)] = share
        targets.append(MarginTarget(sorted_axes, target_shares / target_shares.sum(), marginal.source))
    fitted = rake(seed, targets, quotas.rake_tolerance, quotas.rake_max_iterations)
    combos: list[tuple[tuple[str, str], ...]] = []
    shares: list[float] = []
    for index in np.argwhere(fitted > 0):
        combos.append(tuple((variables[axis], domains[axis][i]) for axis, i in enumerate(index)))
        shares.append(float(fitted[tuple(index)]))
    return combos, shares


def shortfall(cells: list[QuotaCell], kept_per_label: dict[str, int]) -> dict[str, int]:
    """Slots each cell still lacks: its quota minus the personas it has kept."""
    return {
        c.label: c.count - kept_per_label.get(c.label, 0) for c in cells if c.count > kept_per_label.get(c.label, 0)
    }


# The highest loss rate a backfill wave plans for: a model that fails nearly everything asks at
# most about twice the shortfall per wave, not unboundedly more.
MAX_BACKFILL_LOSS = 0.5


def backfill_asks(missing: dict[str, int], loss: float) -> dict[str, int]:
    """Slots a backfill wave asks per short cell: the shortfall, plus what the last wave's loss rate
    (its slots not kept) says this wave will lose again, plus one standard deviation of that loss.

    Asking only the shortfall leaves about half the strata short after every wave (some slots always
    fail), so a build either runs one more wave per stratum or ends short; with the margin a wave
    usually fills its strata. The surplus kept is trimmed after the last wave (over_quota rejects).
    With no loss it asks exactly the shortfall."""
    loss = min(max(loss, 0.0), MAX_BACKFILL_LOSS)
    return {label: n + math.ceil(n * loss / (1 - loss) + math.sqrt(n * loss)) for label, n in missing.items()}


def plan_backfill(cells: list[QuotaCell], asks: dict[str, int]) -> list[QuotaCell]:
    """The cells of the next backfill wave's slots: as many as each cell asks, in plan order."""
    return [cell for cell in cells for _ in range(asks.get(cell.label, 0))]


def assign_slots(cells: list[QuotaCell], seed: int) -> list[QuotaCell]:
    """Slot i -> its cell, shuffled by the seed so every shard mixes strata."""
    expanded = [cell for cell in cells for _ in range(cell.count)]
    order = np.random.default_rng([seed, 0x51075]).permutation(len(expanded))
    return [expanded[i] for i in order]


@dataclass(frozen=True)
class SlotPlan:
    """A config's quota cells and the cell of each of its first-wave slots."""

    cells: list[QuotaCell]
    slot_cells: list[QuotaCell]


def plan_slots(cfg: RunConfig, taxonomy: Taxonomy) -> SlotPlan:
    """Plan the quotas (raking, presets, strata) and give every slot its cell: what build, preview
    and sample all start from."""
    cells = plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas)
    return SlotPlan(cells, assign_slots(cells, cfg.seed))


def shard_ranges(first_slot: int, count: int, shard_size: int) -> list[range]:
    """`count` slots from `first_slot`, cut into shards of at most `shard_size`."""
    end = first_slot + count
    return [range(start, min(start + shard_size, end)) for start in range(first_slot, end, shard_size)]

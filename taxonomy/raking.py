"""Iterative proportional fitting: a joint table that matches given marginals, starting from a seed table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.errors import UserInputError


@dataclass(frozen=True)
class MarginTarget:
    """Target shares over some axes of the joint table; `name` says where it came from (for errors)."""

    axes: tuple[int, ...]
    shares: np.ndarray
    name: str


def _project(table: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    other = tuple(i for i in range(table.ndim) if i not in axes)
    projected: npt.NDArray[np.float64] = table.sum(axis=other)
    # sum() keeps the remaining axes in increasing order; targets are stored the same way.
    return projected


def _expand(values: np.ndarray, axes: tuple[int, ...], ndim: int) -> np.ndarray:
    shape = [1] * ndim
    for axis, size in zip(axes, values.shape, strict=True):
        shape[axis] = size
    return values.reshape(shape)


def rake(
    seed: np.ndarray, targets: list[MarginTarget], tolerance: float = 1e-10, max_iterations: int = 2000
) -> np.ndarray:
    """Scale `seed` until every target margin is met to `tolerance`; the result sums to 1.

    Cells that are zero in the seed stay zero (structural zeros), so a target that needs mass
    where the seed has none is infeasible and is refused with the margin's name.
    """
    if seed.sum() <= 0:
        raise UserInputError(
            "quotas",
            "seed_table",
            "the seed table has no positive weight",
            "give positive weights to the combinations that exist",
        )
    fitted: npt.NDArray[np.float64] = seed / seed.sum()
    for target in targets:
        support = _project(fitted, target.axes)
        impossible = np.argwhere((target.shares > 0) & (support <= 0))
        if len(impossible):
            raise UserInputError(
                "quotas",
                target.name,
                f"target cell {tuple(int(i) for i in impossible[0])} has a share but no "
                "combination in the seed table can reach it",
                "drop that target or give the seed table weight there",
            )
    deviation = np.inf
    for _ in range(max_iterations):
        for target in targets:
            current = _project(fitted, target.axes)
            ratio = np.divide(target.shares, current, out=np.zeros_like(current), where=current > 0)
            fitted = fitted * _expand(ratio, target.axes, fitted.ndim)
        deviation = max(float(np.abs(_project(fitted, t.axes) - t.shares).max()) for t in targets)
        if deviation < tolerance:
            return fitted
    raise UserInputError(
        "quotas",
        ", ".join(t.name for t in targets),
        f"raking did not converge (max deviation {deviation:.2e}); the targets contradict "
        "each other or the seed table's zeros",
        "check that shared attributes have the same shares in every table",
    )

"""Experiment statistics in pure Python (the layer carries no numpy or scipy).

- `percentile`: linear interpolation between the closest ranks (numpy's default), the one
  definition behind every latency figure: the guardrail, the benchmarks, the reliability report
  (and the store computes the same in SQL).
- `up_rate_posterior`: the one model of a variant's up-rate, Beta(1 + up, 1 + down) (a uniform
  prior updated by the votes); the stats report, Thompson sampling and the charts all use it.
- `beta_quantile`: Newton steps (bisection fallback) on the regularized incomplete beta, which
  is evaluated by its continued fraction; ~1e-12 for small counts, ~1e-9 at a million votes
  (lgamma's rounding grows with the counts).
- `chi_square_sf`: the regularized upper incomplete gamma (series or continued fraction), ~1e-12.
- `best_arm_probabilities`: numerical integration over the Beta posteriors on an adaptive
  grid (no sampling, so the same counts always give the same answer), ~1e-6.
- `probability_within`: P(two up-rates differ by less than a margin), on the same grid.
- `PosteriorGrid`: that grid, built once for callers that integrate the same posteriors twice
  (the verdict: P(best), then P(no lift) of the same two variants).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def up_rate_posterior(up: int, down: int) -> tuple[float, float]:
    """Beta (alpha, beta) of a variant's up-rate after `up` and `down` votes."""
    return 1.0 + up, 1.0 + down


_TINY = 1e-300
_EPSILON = 1e-15
_MAX_ITERATIONS = 100_000


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz); converges for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= d * c
        if abs(d * c - 1.0) < _EPSILON:
            return fraction
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b): the CDF of Beta(a, b) at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def beta_quantile(a: float, b: float, probability: float) -> float:
    """The x with I_x(a, b) = probability (a, b >= 1)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    low, high = 0.0, 1.0
    x = a / (a + b)
    log_norm = _log_beta(a, b)
    for _ in range(200):
        error = regularized_incomplete_beta(a, b, x) - probability
        if error > 0:
            high = x
        else:
            low = x
        density = math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - log_norm)
        candidate = x - error / density if density > 0 else low - 1.0
        if not low < candidate < high:
            candidate = (low + high) / 2.0
        if abs(candidate - x) < 1e-13 or high - low < 1e-13:
            return candidate
        x = candidate
    return x


def _lower_gamma_series(s: float, x: float) -> float:
    term = total = 1.0 / s
    denominator = s
    for _ in range(_MAX_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPSILON:
            return total * math.exp(-x + s * math.log(x) - math.lgamma(s))
    raise ArithmeticError(f"incomplete gamma series did not converge for s={s}, x={x}")


def _upper_gamma_fraction(s: float, x: float) -> float:
    b = x + 1.0 - s
    c, d = 1.0 / _TINY, 1.0 / b
    fraction = d
    for i in range(1, _MAX_ITERATIONS):
        numerator = -i * (i - s)
        b += 2.0
        d = numerator * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + numerator / c
        c = c if abs(c) > _TINY else _TINY
        fraction *= d * c
        if abs(d * c - 1.0) < _EPSILON:
            return fraction * math.exp(-x + s * math.log(x) - math.lgamma(s))
    raise ArithmeticError(f"incomplete gamma fraction did not converge for s={s}, x={x}")


def chi_square_sf(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square(degrees_of_freedom)."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees_of_freedom must be >= 1, got {degrees_of_freedom}")
    if statistic <= 0.0:
        return 1.0
    s, x = degrees_of_freedom / 2.0, statistic / 2.0
    if x < s + 1.0:
        return max(0.0, 1.0 - _lower_gamma_series(s, x))
    return min(1.0, _upper_gamma_fraction(s, x))


def sample_ratio_mismatch_p_value(
    observed: Mapping[str, int], weights: Mapping[str, float]
) -> float | None:
    """Pearson chi-square goodness of fit of the observed traffic to the configured weights.

    Only variants with a positive weight take part; None when there is no test to run
    (fewer than two such variants, or no traffic).
    """
    expected_share = {name: weight for name, weight in weights.items() if weight > 0}
    total_weight = sum(expected_share.values())
    total = sum(observed.get(name, 0) for name in expected_share)
    if len(expected_share) < 2 or total == 0:
        return None
    statistic = 0.0
    for name, weight in expected_share.items():
        expected = total * weight / total_weight
        statistic += (observed.get(name, 0) - expected) ** 2 / expected
    return chi_square_sf(statistic, len(expected_share) - 1)


@dataclass(frozen=True)
class BestArm:
    probability_best: float
    expected_loss: float


def _log_density(a: float, b: float, x: float, log_norm: float) -> float:
    """log of the Beta(a, b) density at x, finite at the ends where a or b is 1."""
    if x <= 0.0:
        return -log_norm if a == 1.0 else -math.inf
    if x >= 1.0:
        return -log_norm if b == 1.0 else -math.inf
    return (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - log_norm


class PosteriorGrid:
    """Beta posteriors on one shared grid: each one's density and CDF (trapezoid rule), by its
    (alpha, beta).

    The grid puts `points_per_variant` points across each posterior's bulk (mean +- 12 sd), so
    that even the narrow posteriors of a million votes are resolved; deterministic, ~1e-6. The
    points depend only on the set of posteriors, so integrals over any of them give the same
    bits on this grid as on one built for exactly the posteriors they read.
    """

    def __init__(
        self, posteriors: Iterable[tuple[float, float]], points_per_variant: int = 1_500
    ) -> None:
        self.posteriors = frozenset(posteriors)
        self.points_per_variant = points_per_variant
        points = {0.0, 1.0}
        for a, b in self.posteriors:
            mean = a / (a + b)
            spread = 12.0 * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
            low, high = max(0.0, mean - spread), min(1.0, mean + spread)
            step = (high - low) / points_per_variant
            points.update(low + step * index for index in range(points_per_variant + 1))
        self.x = sorted(points)
        self.widths = [right - left for left, right in itertools.pairwise(self.x)]
        self.densities: dict[tuple[float, float], list[float]] = {}
        self.cdfs: dict[tuple[float, float], list[float]] = {}
        # log x and log(1 - x) once for all posteriors (None at the ends, which
        # `_log_density` answers): the arithmetic of `_log_density`, so the same bits.
        logs = [(math.log(x), math.log1p(-x)) if 0.0 < x < 1.0 else None for x in self.x]
        for a, b in self.posteriors:
            log_norm = _log_beta(a, b)
            a1, b1 = a - 1.0, b - 1.0
            density = [
                math.exp(a1 * pair[0] + b1 * pair[1] - log_norm)
                if pair is not None
                else math.exp(_log_density(a, b, x, log_norm))
                for x, pair in zip(self.x, logs, strict=True)
            ]
            cumulative = list(itertools.accumulate(self._trapezoids(density), initial=0.0))
            self.densities[a, b] = density
            self.cdfs[a, b] = [value / cumulative[-1] for value in cumulative]

    def _trapezoids(self, values: Sequence[float]) -> list[float]:
        return [
            width * (left + right) / 2.0
            for width, left, right in zip(self.widths, values, values[1:], strict=False)
        ]

    def integral(self, values: Sequence[float]) -> float:
        return sum(self._trapezoids(values))

    def cdfs_at(self, posterior: tuple[float, float], points: Iterable[float]) -> list[float]:
        """`posterior`'s CDF at each of `points`, linear between grid points."""
        grid, cdf, find = self.x, self.cdfs[posterior], bisect.bisect_right
        # grid[right] is the first grid point above x; one comprehension, as this runs for
        # every grid point of `probability_within`.
        return [
            0.0
            if x <= 0.0
            else 1.0
            if x >= 1.0
            else cdf[(right := find(grid, x)) - 1]
            + (cdf[right] - cdf[right - 1])
            * ((x - grid[right - 1]) / (grid[right] - grid[right - 1]))
            for x in points
        ]

    def covers(self, *posteriors: tuple[float, float], points_per_variant: int) -> bool:
        """Whether this grid is the one `posteriors` alone would build."""
        return (
            self.points_per_variant == points_per_variant
            and frozenset(posteriors) == self.posteriors
        )


def best_arm_probabilities(
    posteriors: Mapping[str, tuple[float, float]],
    *,
    points_per_variant: int = 1_500,
    grid: PosteriorGrid | None = None,
) -> dict[str, BestArm]:
    """P(variant has the highest up-rate) and E[best rate - its rate] under Beta posteriors.

    `posteriors` maps a variant to its Beta (alpha, beta), alpha and beta >= 1. Both are
    one-dimensional integrals, P(i best) = integral of f_i(x) * prod_{j != i} F_j(x) dx and
    E[max] = x_end - integral of prod_j F_j(x) dx, on a `PosteriorGrid` (`grid`, when it is
    the one these posteriors build; otherwise a new one). Deterministic; ~1e-6.
    """
    names = list(posteriors)
    if not names:
        return {}
    if grid is None or not grid.covers(*posteriors.values(), points_per_variant=points_per_variant):
        grid = PosteriorGrid(posteriors.values(), points_per_variant)

    def product_of_cdfs(excluded: str | None) -> list[float]:
        product = [1.0] * len(grid.x)
        for name in names:
            if name != excluded:
                cdf = grid.cdfs[posteriors[name]]
                product = [p * c for p, c in zip(product, cdf, strict=True)]
        return product

    expected_best = grid.x[-1] - grid.integral(product_of_cdfs(None))
    result = {}
    for name, (a, b) in posteriors.items():
        others = product_of_cdfs(name)
        density = grid.densities[a, b]
        best = grid.integral([d * o for d, o in zip(density, others, strict=True)])
        result[name] = BestArm(min(1.0, max(0.0, best)), max(0.0, expected_best - a / (a + b)))
    return result


def probability_within(
    first: tuple[float, float],
    second: tuple[float, float],
    margin: float,
    *,
    points_per_variant: int = 1_500,
    grid: PosteriorGrid | None = None,
) -> float:
    """P(|X - Y| < margin) for independent X ~ Beta(*first), Y ~ Beta(*second): how sure the
    two up-rates differ by less than `margin`. The integral of f_X(x) * (F_Y(x + margin) -
    F_Y(x - margin)) dx on a `PosteriorGrid` (`grid`, when it is the one these two build);
    deterministic, ~1e-5."""
    if grid is None or not grid.covers(first, second, points_per_variant=points_per_variant):
        grid = PosteriorGrid((first, second), points_per_variant)
    above = grid.cdfs_at(second, [x + margin for x in grid.x])
    below = grid.cdfs_at(second, [x - margin for x in grid.x])
    inside = [
        density * (high - low)
        for density, high, low in zip(grid.densities[first], above, below, strict=True)
    ]
    return min(1.0, max(0.0, grid.integral(inside)))

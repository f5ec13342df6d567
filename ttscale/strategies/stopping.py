"""Adaptive sample-count rules: when has an item been sampled enough?

Pure functions of what has been observed so far (vote counts, window answers, verifier scores);
no engine. Every rule returns or feeds a ``StopDecision`` so the reason is stored, not logged.

- Adaptive-Consistency (Aggarwal et al. 2023, "Let's Sample Step by Step"): Beta and Dirichlet
  stopping criteria on the vote counts.
- ESC, Early-Stopping Self-Consistency (Li et al. 2024, ICLR): stop when a whole window agrees.
- OptScale (Wang et al. 2025, arXiv 2506.22376): scores ~ TruncNormal(μ, σ) on [0, 1],
  N* = ⌈ln q / ln F(s*)⌉.
- Probe-and-stop (Dynasor-CoT, Fu et al. 2024, arXiv 2412.20993): stop thinking once k
  consecutive answer probes of the trace agree.
- TTSPM (Wang et al. 2025, arXiv 2505.20522): saturation point of F(N) = F_max·(1 − (1 − p)^N),
  from ``ttscale.saturation_math``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import integrate, optimize, special, stats

from ttscale.saturation_math import ceil_ratio

# TTSPM's saturation point has one implementation, shared with analysis; importable from here too.
from ttscale.saturation_math import marginal_gain as marginal_gain
from ttscale.saturation_math import saturation_point as saturation_point
from ttscale.strategies.base import ContinueReason, StopReason

# Reasons are the enums of strategies.base; these aliases keep older imports working.
CONVERGED = StopReason.CONVERGED
WINDOW_AGREED = StopReason.WINDOW_AGREED
N_STAR_REACHED = StopReason.N_STAR_REACHED
CAP = StopReason.CAP
NOT_CONVERGED = ContinueReason.NOT_CONVERGED
NO_ANSWERS = ContinueReason.NO_ANSWERS
WINDOW_DISAGREED = ContinueReason.WINDOW_DISAGREED
PROBES_AGREED = StopReason.PROBES_AGREED
PROBES_DISAGREED = ContinueReason.PROBES_DISAGREED
BELOW_N_STAR = ContinueReason.BELOW_N_STAR

SIGMA_BOUNDS = (1e-3, 10.0)
# μ of a truncated normal may lie outside [0, 1]; beyond ±10 with σ ≤ 10 the fit is meaningless.
MU_BOUNDS = (-10.0, 11.0)

Scores = Sequence[float] | np.ndarray
"""Verifier scores in [0, 1], as a list or a 1-D array."""


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop sampling one item, and why, as one ledger row stores it.

    ``statistic`` is the rule's number: the stop probability (Adaptive-Consistency), the window's
    agreement share (ESC) or N* (OptScale); None when there was nothing to compute it from.
    """

    stop: bool
    reason: StopReason | ContinueReason
    statistic: float | None
    rule: str
    threshold: float | None
    samples_seen: int

    @property
    def stop_reason(self) -> StopReason:
        """The reason as an ``Outcome`` stores it; only a decision that stops has one."""
        if not isinstance(self.reason, StopReason):
            raise ValueError(f"{self.rule} did not stop: {self.reason}")
        return self.reason


# --- Adaptive-Consistency ---------------------------------------------------------------------


def beta_stop_probability(v1: int, v2: int) -> float:
    """P(p1 > p2) under Beta(v1 + 1, v2 + 1): 1 − I_0.5(v1 + 1, v2 + 1) (Aggarwal et al. 2023).

    The leading answer has ``v1`` votes and the runner-up ``v2``; the uniform Beta(1, 1) prior
    gives the +1. Computed as I_0.5(v2 + 1, v1 + 1), equal by I_x(a, b) = 1 − I_(1−x)(b, a), to
    avoid cancellation when P is close to 1.
    """
    if v1 < 0 or v2 < 0:
        raise ValueError(f"vote counts must be >= 0, got {v1}, {v2}")
    return float(special.betainc(v2 + 1, v1 + 1, 0.5))


def dirichlet_stop_probability(
    counts: Sequence[int], draws: int | None = None, seed: int = 0
) -> float:
    """P(the leading answer has the largest share) under Dirichlet(counts + 1).

    The Dirichlet criterion of Aggarwal et al. (2023) for three or more answers. The leading answer
    is the first entry with the largest count (the majority vote's tie-break). Every entry is a
    competitor, so pass only answers actually seen; a single answer is compared with an unseen
    runner-up of zero votes, as the Beta criterion does, rather than given P = 1.

    ``draws=None`` (default) integrates exactly: shares are normalised Gamma(counts + 1) variables,
    so P = ∫ g_lead(x) ∏_{j≠lead} G_j(x) dx, a 1-D quadrature (absolute error < 1e-9).
    ``draws=n`` estimates the same by seeded Monte Carlo instead; its standard error is
    sqrt(P(1 − P)/n) ≤ 0.5/sqrt(n), e.g. ≤ 0.0016 at n = 100,000.
    """
    alphas = np.asarray(counts, dtype=float) + 1.0
    if alphas.ndim != 1 or alphas.size == 0:
        raise ValueError("counts must be a non-empty 1-D sequence")
    if np.any(alphas < 1.0):
        raise ValueError(f"counts must be >= 0, got {list(counts)}")
    if alphas.size == 1:
        alphas = np.append(alphas, 1.0)
    lead = int(np.argmax(alphas))
    if draws is not None:
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        rng = np.random.default_rng(seed)
        shares = rng.gamma(alphas, size=(draws, alphas.size))
        return float(np.mean(np.argmax(shares, axis=1) == lead))
    others = np.delete(alphas, lead)
    leader = stats.gamma(alphas[lead])

    def integrand(x: float) -> float:
        return float(leader.pdf(x) * np.prod(special.gammainc(others, x)))

    # The leader's density is negligible outside these quantiles; quad on [0, inf) can miss the
    # peak when counts are large.
    low, high = leader.ppf(1e-13), leader.isf(1e-13)
    mode = alphas[lead] - 1.0
    points = [mode] if low < mode < high else None
    value, _ = integrate.quad(integrand, low, high, points=points, epsabs=1e-11)
    return float(min(max(value, 0.0), 1.0))


def adaptive_consistency_should_stop(
    counts: Sequence[int],
    threshold: float = 0.95,
    rule: Literal["beta", "dirichlet", "auto"] = "auto",
    max_samples: int | None = None,
) -> StopDecision:
    """Stop once the stop probability reaches ``threshold`` (Aggarwal et al. 2023), or at the cap.

    ``counts`` are the votes per distinct answer seen so far. ``rule="beta"`` compares the top
    two counts; ``"dirichlet"`` uses all counts; ``"auto"`` picks beta for ≤ 2 distinct answers and
    dirichlet for ≥ 3, as the paper does. ``max_samples`` turns a non-converged item into a "cap"
    stop once that many votes have been cast.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    votes = [int(c) for c in counts]
    seen = sum(votes)
    chosen = rule if rule != "auto" else ("beta" if len(votes) <= 2 else "dirichlet")
    rule_name = f"adaptive_consistency_{chosen}"
    if not votes or seen == 0:
        return StopDecision(False, ContinueReason.NO_ANSWERS, None, rule_name, threshold, seen)
    if chosen == "beta":
        top = [*sorted(votes, reverse=True), 0]
        probability = beta_stop_probability(top[0], top[1])
    elif chosen == "dirichlet":
        probability = dirichlet_stop_probability(votes)
    else:
        raise ValueError(f"unknown rule {rule!r}")
    if probability >= threshold:
        return StopDecision(True, StopReason.CONVERGED, probability, rule_name, threshold, seen)
    if max_samples is not None and seen >= max_samples:
        return StopDecision(True, StopReason.CAP, probability, rule_name, threshold, seen)
    return StopDecision(
        False, ContinueReason.NOT_CONVERGED, probability, rule_name, threshold, seen
    )


# --- ESC ------------------------------------------------------------------------------------------


def esc_should_stop(window_answers: Sequence[str | None]) -> bool:
    """True when every answer in the window is the same answer (Li et al. 2024).

    A None (unparsed) answer never agrees, and an empty window has nothing to agree on.
    """
    if not window_answers or any(a is None for a in window_answers):
        return False
    return len(set(window_answers)) == 1


def esc_decisions(
    answers: Sequence[str | None], window: int, max_samples: int | None = None
) -> list[StopDecision]:
    """The ESC decision at the end of each window of ``answers``, up to the first stop.

    Windows are answers[0:w], answers[w:2w], …; a trailing partial window gets no decision, except
    that sampling ends at ``max_samples`` ("cap", even mid-window). ``statistic`` is the share of
    the window held by its most common parsed answer (1.0 when the window agreed).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    limit = len(answers) if max_samples is None else min(len(answers), max_samples)
    decisions: list[StopDecision] = []
    for start in range(0, limit, window):
        end = min(start + window, limit)
        chunk = answers[start:end]
        parsed = Counter(a for a in chunk if a is not None)
        share = max(parsed.values()) / len(chunk) if parsed else 0.0
        at_cap = max_samples is not None and end >= max_samples
        if len(chunk) == window and esc_should_stop(chunk):
            decisions.append(StopDecision(True, StopReason.WINDOW_AGREED, share, "esc", None, end))
            break
        if at_cap:
            decisions.append(StopDecision(True, StopReason.CAP, share, "esc", None, end))
            break
        if len(chunk) < window:
            break
        decisions.append(
            StopDecision(False, ContinueReason.WINDOW_DISAGREED, share, "esc", None, end)
        )
    return decisions


# --- Probe-and-stop ------------------------------------------------------------------------------


def probes_agree_decision(keys: Sequence[str | None], k: int, at_cap: bool = False) -> StopDecision:
    """Stop thinking once the last ``k`` probes gave one answer, or at the cap (Dynasor-CoT).

    ``keys`` are the probes' answers so far, in order, as graded-equal keys (the dataset's
    ``canonical_answer``): equal keys are equal answers, and a None (no answer) never agrees.
    ``statistic`` is the length of the trailing run of equal answers; ``at_cap`` says thinking
    has reached its cap, which stops it ("cap") unless the probes agreed.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    streak = 0
    if keys and keys[-1] is not None:
        streak = next((i for i, key in enumerate(reversed(keys)) if key != keys[-1]), len(keys))
    seen = len(keys)
    if streak >= k:
        return StopDecision(True, PROBES_AGREED, float(streak), "probe_stop", float(k), seen)
    if at_cap:
        return StopDecision(True, CAP, float(streak), "probe_stop", float(k), seen)
    return StopDecision(False, PROBES_DISAGREED, float(streak), "probe_stop", float(k), seen)


# --- OptScale -------------------------------------------------------------------------------------


def _log_mass(a: float, b: float) -> float:
    """log(Φ(b) − Φ(a)) for a < b, without underflow far in either tail."""
    if a > 0.0:  # both bounds in the upper tail: reflect, Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
        a, b = -b, -a
    log_b, log_a = special.log_ndtr(b), special.log_ndtr(a)
    return float(log_b + np.log1p(-np.exp(log_a - log_b)))


def _truncnorm_nll(mu: float, sigma: float, scores: np.ndarray) -> float:
    """Negative log-likelihood of TruncNormal(μ, σ) on [0, 1]."""
    z = (scores - mu) / sigma
    log_mass = _log_mass(-mu / sigma, (1.0 - mu) / sigma)
    per_score = 0.5 * math.log(2 * math.pi) + math.log(sigma) + log_mass
    return float(0.5 * np.dot(z, z) + scores.size * per_score)


def _check_scores(scores: Scores) -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("scores must be a non-empty 1-D sequence")
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValueError("scores must lie in [0, 1]")
    return values


def _profile_fit(objective: Callable[[float, float], float]) -> tuple[float, float]:
    """Minimise objective(μ, σ) over the bounds: over μ for each σ, then over ln σ.

    The truncated-normal likelihood is log-concave in the natural parameters (μ/σ², −1/(2σ²)),
    so the inner problem is convex in μ and the profile is unimodal in σ: two bounded Brent
    searches find the optimum (to ~1e-7) where a joint L-BFGS-B search in (μ, σ) stalls on the
    ridge towards μ → −∞, σ → ∞ that near-uniform scores produce.
    """

    def best_mu(sigma: float) -> tuple[float, float]:
        inner = optimize.minimize_scalar(
            lambda mu: objective(mu, sigma),
            bounds=MU_BOUNDS,
            method="bounded",
            options={"xatol": 1e-7},
        )
        return float(inner.x), float(inner.fun)

    log_bounds = (math.log(SIGMA_BOUNDS[0]), math.log(SIGMA_BOUNDS[1]))
    outer = optimize.minimize_scalar(
        lambda log_sigma: best_mu(math.exp(log_sigma))[1],
        bounds=log_bounds,
        method="bounded",
        options={"xatol": 1e-7},
    )
    sigma = float(min(max(math.exp(outer.x), SIGMA_BOUNDS[0]), SIGMA_BOUNDS[1]))
    return best_mu(sigma)[0], sigma


def fit_truncnorm_mle(scores: Scores) -> tuple[float, float]:
    """Maximum-likelihood (μ, σ) of TruncNormal(μ, σ) on [0, 1] (OptScale, MLE variant).

    Exact truncated log-likelihood, σ ∈ [1e-3, 10], μ ∈ [−10, 11]. One score, or all scores
    equal, has no finite MLE (the likelihood grows as σ → 0): the fit returns μ = that score and
    σ = 1e-3, the lower bound. Near-uniform scores push σ to its upper bound. Prefer the MAP fit
    when k is small.
    """
    values = _check_scores(scores)
    if np.ptp(values) == 0.0:
        return float(values[0]), SIGMA_BOUNDS[0]
    return _profile_fit(lambda mu, sigma: _truncnorm_nll(mu, sigma, values))


def fit_truncnorm_map(
    scores: Scores,
    prior_mu: float,
    prior_sigma: float,
    prior_strength: float = 4.0,
) -> tuple[float, float]:
    """Maximum a-posteriori (μ, σ) of TruncNormal(μ, σ) on [0, 1] (OptScale, MAP variant).

    Priors, worth ``prior_strength`` pseudo-observations n0 (conjugate-style):
    μ ~ Normal(prior_mu, prior_sigma/√n0) and ln σ ~ Normal(ln prior_sigma, 1/√(2·n0)) — the
    sampling spread of the mean and of ln of the standard deviation of n0 normal observations.
    With few scores the fit stays near the prior; as k grows it approaches the MLE. Bounds as in
    ``fit_truncnorm_mle``; one or all-equal scores give a finite answer because the prior does.

    Deviation: the OptScale reference code puts Normal priors with std 0.1 on μ and on σ; a
    log-normal prior keeps σ positive and scales with ``prior_sigma``.
    """
    values = _check_scores(scores)
    if prior_strength <= 0:
        raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
    if not SIGMA_BOUNDS[0] <= prior_sigma <= SIGMA_BOUNDS[1]:
        raise ValueError(f"prior_sigma must be in {SIGMA_BOUNDS}, got {prior_sigma}")
    mu_scale = prior_sigma / math.sqrt(prior_strength)
    log_sigma_scale = 1.0 / math.sqrt(2.0 * prior_strength)
    log_prior_sigma = math.log(prior_sigma)

    def neg_log_posterior(mu: float, sigma: float) -> float:
        log_sigma = math.log(sigma)
        prior = ((mu - prior_mu) / mu_scale) ** 2 + (
            (log_sigma - log_prior_sigma) / log_sigma_scale
        ) ** 2
        # + ln σ: the log-normal density of σ carries a 1/σ Jacobian.
        return _truncnorm_nll(mu, sigma, values) + 0.5 * prior + log_sigma

    return _profile_fit(neg_log_posterior)


def truncnorm_cdf(s: float, mu: float, sigma: float) -> float:
    """F(s; μ, σ), the CDF of Normal(μ, σ) truncated to [0, 1]: 0 below 0, 1 above 1."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    a, b = (0.0 - mu) / sigma, (1.0 - mu) / sigma
    return float(stats.truncnorm.cdf(s, a, b, loc=mu, scale=sigma))


def optscale_n_star(mu: float, sigma: float, s_star: float, q: float, k: int, n_max: int) -> int:
    """N* = ⌈ln q / ln F(s*; μ, σ)⌉ clipped to [k, n_max] (OptScale, arXiv 2506.22376).

    N* is the smallest N with P(max of N scores ≤ s*) = F(s*)^N ≤ q: with probability ≥ 1 − q at
    least one of N i.i.d. scores exceeds s*. F(s*) = 0 (every score exceeds s*) gives k, the
    samples already drawn; F(s*) = 1 (none can) gives n_max.

    Deviation: the reference code scans N = 1, 2, … and reads the q-quantile of the max-score
    distribution off a 1,000-point grid; this is the closed form of the same condition.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if not 1 <= k <= n_max:
        raise ValueError(f"need 1 <= k <= n_max, got k={k}, n_max={n_max}")
    below = truncnorm_cdf(s_star, mu, sigma)
    if below <= 0.0:
        return k
    if below >= 1.0:
        return n_max
    return min(max(ceil_ratio(math.log(q), math.log(below)), k), n_max)


def optscale_should_stop(samples_drawn: int, n_star: int, n_max: int) -> StopDecision:
    """Stop once N* samples are drawn ("n_star_reached"), or at n_max ("cap")."""
    if samples_drawn >= n_star:
        return StopDecision(
            True, StopReason.N_STAR_REACHED, float(n_star), "optscale", None, samples_drawn
        )
    if samples_drawn >= n_max:
        return StopDecision(True, StopReason.CAP, float(n_star), "optscale", None, samples_drawn)
    return StopDecision(
        False, ContinueReason.BELOW_N_STAR, float(n_star), "optscale", None, samples_drawn
    )

"""emphasis.dynamics: per-example training dynamics, the noise-rate estimate, label issues."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

import emphasis
from emphasis.dynamics import MAX_MARGIN


def _rows(rng, n, c):
    return rng.normal(size=(n, c)) * 3


def test_running_means_match_a_direct_computation():
    rng = np.random.default_rng(0)
    n, c = 6, 4
    labels = rng.integers(0, c, n)
    dynamics = emphasis.TrainingDynamics(n, c)
    seen_logits = {i: [] for i in range(n)}
    for _ in range(5):  # batches of varying size, at any cadence
        index = rng.permutation(n)[: rng.integers(1, n + 1)]
        logits = _rows(rng, index.size, c)
        dynamics.update(index, logits, labels[index])
        for i, row in zip(index, logits, strict=True):
            seen_logits[i].append(row)
    for i in range(n):
        rows = np.array(seen_logits[i])
        if not len(rows):
            assert math.isnan(dynamics.scores()[i]) and dynamics.suggested_labels()[i] == -1
            continue
        p = softmax(rows, axis=1)[:, labels[i]]
        others = np.delete(rows, labels[i], axis=1)
        margin = rows[:, labels[i]] - others.max(axis=1)
        np.testing.assert_allclose(dynamics.mean_p[i], p.mean(), rtol=1e-12)
        np.testing.assert_allclose(dynamics.area_under_margin[i], margin.mean(), rtol=1e-12)
        np.testing.assert_allclose(dynamics.scores()[i], -margin.mean(), rtol=1e-12)
        wrong = rows.argmax(axis=1) != labels[i]
        np.testing.assert_allclose(dynamics.disagreement[i], wrong.mean())
        assert dynamics.suggested_labels()[i] == rows[-1].argmax()
        assert dynamics.count[i] == len(rows)


def test_extreme_logits_stay_finite():
    dynamics = emphasis.TrainingDynamics(3, 3)
    logits = np.array([[1e4, -1e4, 0.0], [0.0, -math.inf, -math.inf], [-math.inf, 5.0, 0.0]])
    dynamics.update([0, 1, 2], logits, [0, 0, 0])
    assert dynamics.scores()[0] == -1e4
    assert dynamics.scores()[1] == -MAX_MARGIN  # no other class left: infinite margin, clipped
    assert dynamics.scores()[2] == MAX_MARGIN
    assert dynamics.mean_p.tolist() == [1.0, 1.0, 0.0]


def test_update_per_example_is_what_update_feeds():
    rng = np.random.default_rng(1)
    logits, labels = _rows(rng, 5, 3), rng.integers(0, 3, 5)
    direct = emphasis.TrainingDynamics(5, 3)
    direct.update(np.arange(5), logits, labels)
    fed = emphasis.TrainingDynamics(5, 3)
    p = softmax(logits, axis=1)[np.arange(5), labels]
    others = np.where(np.arange(3) == labels[:, None], -np.inf, logits)
    margin = logits[np.arange(5), labels] - others.max(axis=1)
    fed.update_per_example(np.arange(5), labels, p, margin, logits.argmax(axis=1))
    np.testing.assert_allclose(fed.scores(), direct.scores(), rtol=1e-12)
    np.testing.assert_allclose(fed.mean_p, direct.mean_p, rtol=1e-12)


BAD_UPDATES = [
    (dict(indices=[0, 4]), ValueError, r"indices must be in \[0, 3\].*got 4"),
    (dict(indices=[-1, 0]), ValueError, "indices must be in"),
    (dict(indices=[1, 1]), ValueError, "indices must not repeat within one update, got 1"),
    (dict(indices=[0.0, 1.0]), TypeError, "indices must hold integers"),
    (dict(indices=[0, 1, 2]), ValueError, r"labels must have one entry per example \(3\)"),
    (dict(labels=[0, 3]), ValueError, r"labels must be class indices in \[0, 2\]"),
    (dict(labels=[0.0, 1.0]), TypeError, "labels must hold integers"),
    (dict(logits=np.array([[0.0, math.nan, 0.0], [0.0, 0, 0]])), ValueError, "logits contain NaN"),
    (dict(logits=np.zeros((2, 4))), ValueError, r"logits must have shape \(M, 3\)"),
    (dict(logits=np.zeros((2, 3), int)), TypeError, "logits must be a floating-point"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD_UPDATES)
def test_bad_updates_name_the_argument(change, error, match):
    dynamics = emphasis.TrainingDynamics(4, 3)
    arguments = dict(indices=[0, 1], logits=np.zeros((2, 3)), labels=[0, 1]) | change
    with pytest.raises(error, match=match):
        dynamics.update(**arguments)
    assert not dynamics.seen.any()  # a refused update changes nothing


def test_bad_per_example_updates():
    dynamics = emphasis.TrainingDynamics(4, 3)
    good = dict(indices=[0, 1], labels=[0, 1], p=[0.5, 0.5], margin=[0.0, 1.0], predicted=[0, 1])
    for change, match in [
        (dict(p=[0.5, 1.5]), r"p must hold probabilities in \[0, 1\]"),
        (dict(p=[0.5, math.nan]), "p must be finite"),
        (dict(margin=[0.0, math.nan]), "margin must be finite"),
        (dict(margin=[0.0]), r"margin must have shape \(2,\)"),
        (dict(predicted=[0, 5]), r"predicted must be class indices in \[0, 2\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            dynamics.update_per_example(**(good | change))
    assert not dynamics.seen.any()


def test_a_changed_label_is_refused():
    dynamics = emphasis.TrainingDynamics(2, 2)
    dynamics.update([0], np.zeros((1, 2)), [0])
    with pytest.raises(ValueError, match="example 0 was seen with label 0 and now with 1"):
        dynamics.update([0], np.zeros((1, 2)), [1])


@pytest.mark.parametrize(
    ("num_examples", "num_classes", "error"),
    [(0, 3, ValueError), (3, 1, ValueError), (3.0, 3, TypeError), (True, 3, TypeError)],
)
def test_constructor_checks(num_examples, num_classes, error):
    with pytest.raises(error, match="num_"):
        emphasis.TrainingDynamics(num_examples, num_classes)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.4, 0.6])
def test_noise_rate_of_a_two_mode_mixture(rate):
    rng = np.random.default_rng(2)
    n = 4000
    noisy = rng.random(n) < rate
    scores = np.where(noisy, rng.normal(2.0, 1.0, n), rng.normal(-4.0, 1.5, n))
    estimate = emphasis.estimate_noise_rate(scores)
    assert abs(estimate.rate - noisy.mean()) < 0.02  # tied variance, components of sd 1 and 1.5
    assert estimate.means[0] < estimate.means[1]
    assert estimate.method == "mixture" and estimate.separation > 2.0
    # The posterior separates the two groups.
    assert ((estimate.posterior > 0.5) == noisy).mean() > 0.98


def test_noise_rate_without_two_modes_is_the_share_of_negative_margins():
    """One mode: the rate is the fraction of positive scores (labels the model does not
    prefer); nothing seen: 0."""
    estimate = emphasis.estimate_noise_rate(np.full(10, -3.0))
    assert estimate.rate == 0.0 and estimate.method == "negative margin"
    assert emphasis.estimate_noise_rate(np.full(10, 3.0)).rate == 1.0
    estimate = emphasis.estimate_noise_rate(np.array([1.0, math.nan]))
    assert estimate.rate == 1.0 and math.isnan(estimate.posterior[1])
    dynamics = emphasis.TrainingDynamics(5, 3)
    assert emphasis.estimate_noise_rate(dynamics).rate == 0.0  # nothing seen yet


def test_noise_rate_of_overlapping_components_counts_the_negative_margins():
    """Pair noise: clean and flipped margins overlap around ±log((1-r)/r), one cloud, and
    the estimate is the share of negative margins (how close it comes to the truth on real
    scores is measured by reference_training/label_issues.py)."""
    rng = np.random.default_rng(7)
    n, rate = 4000, 0.4
    noisy = rng.random(n) < rate
    level = np.log((1 - rate) / rate)
    scores = np.where(noisy, rng.normal(level, 0.6, n), rng.normal(-level, 0.6, n))
    estimate = emphasis.estimate_noise_rate(scores)
    assert estimate.method == "negative margin" and estimate.separation < 2.0
    assert estimate.rate == np.mean(scores > 0)
    assert 0.0 < estimate.mixture_weight < 1.0 and estimate.mixture_weight != estimate.rate
    np.testing.assert_array_equal(estimate.posterior, (scores > 0).astype(float))
    # the same clouds moved apart: the mixture again
    apart = np.where(noisy, scores + 3.0, scores - 3.0)
    separated = emphasis.estimate_noise_rate(apart)
    assert separated.method == "mixture" and separated.separation > 2.0
    assert separated.rate == separated.mixture_weight
    assert abs(separated.rate - noisy.mean()) < 0.02
    # one cloud with a few outliers in its tail: a separated but one-mode fit is no estimate
    tail = np.concatenate([rng.normal(-0.3, 0.6, 3960), rng.normal(2.0, 0.3, 40)])
    outliers = emphasis.estimate_noise_rate(tail)
    assert outliers.method == "negative margin" and outliers.rate == np.mean(tail > 0)


def test_is_bimodal_counts_the_modes_of_the_mixture_density():
    from emphasis.dynamics import is_bimodal

    rng = np.random.default_rng(8)
    x = np.linspace(-10, 20, 30001)
    for weight, separation in zip(
        rng.uniform(0.01, 0.99, 200), rng.uniform(1, 8, 200), strict=True
    ):
        density = weight * np.exp(-0.5 * x**2) + (1 - weight) * np.exp(-0.5 * (x - separation) ** 2)
        peaks = (density[1:-1] > density[:-2]) & (density[1:-1] > density[2:])
        assert is_bimodal(weight, separation) == (peaks.sum() == 2), (weight, separation)
    assert not is_bimodal(0.5, 2.0) and not is_bimodal(0.0, 5.0) and not is_bimodal(1.0, 5.0)


def test_find_label_issues_on_a_fitted_model():
    """A model that learnt the clean labels flags exactly the flipped ones."""
    rng = np.random.default_rng(3)
    n, c = 500, 5
    clean = rng.integers(0, c, n)
    noisy = emphasis.symmetric_noise(clean, 0.3, seed=4)
    dynamics = emphasis.TrainingDynamics(n, c)
    for _ in range(3):  # epochs
        logits = rng.normal(size=(n, c)) + 4 * np.eye(c)[clean]
        dynamics.update(np.arange(n), logits, noisy.labels)
    estimate = emphasis.estimate_noise_rate(dynamics)
    assert abs(estimate.rate - noisy.realised_rate) < 0.03
    found = emphasis.find_label_issues(dynamics)
    assert abs(found.size - noisy.flipped.sum()) <= 0.03 * n
    assert noisy.flipped[found].mean() > 0.95
    assert (dynamics.suggested_labels()[found] == clean[found]).mean() > 0.9
    scores = dynamics.scores()
    assert (np.diff(scores[found]) <= 0).all()  # most likely first
    assert emphasis.find_label_issues(dynamics, rate=0.0).size == 0


def test_find_label_issues_checks_its_arguments():
    dynamics = emphasis.TrainingDynamics(2, 2)
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\]"):
        emphasis.find_label_issues(dynamics, rate=1.5)
    with pytest.raises(TypeError, match="dynamics must be a TrainingDynamics"):
        emphasis.find_label_issues(np.zeros(3))


def test_the_estimate_feeds_suggest():
    scores = np.concatenate([np.full(60, -3.0), np.full(40, 2.0)])
    scores += np.random.default_rng(5).normal(0, 0.3, 100)
    estimate = emphasis.estimate_noise_rate(scores)
    assert emphasis.suggest(estimate.rate, 10) == emphasis.suggest(0.4, 10)


def test_totals_round_trip_and_consistency_checks():
    rng = np.random.default_rng(6)
    dynamics = emphasis.TrainingDynamics(4, 3)
    dynamics.update([0, 2], _rows(rng, 2, 3), [1, 2])
    again = emphasis.TrainingDynamics.from_totals(3, dynamics.totals())
    np.testing.assert_array_equal(again.scores(), dynamics.scores())
    np.testing.assert_array_equal(again.suggested_labels(), dynamics.suggested_labels())
    totals = dynamics.totals()
    with pytest.raises(ValueError, match=r"totals\.labels is inconsistent at example 1"):
        emphasis.TrainingDynamics.from_totals(3, totals._replace(labels=np.array([1, 0, 2, -1])))
    with pytest.raises(ValueError, match=r"totals\.sum_p is inconsistent"):
        emphasis.TrainingDynamics.from_totals(3, totals._replace(sum_p=totals.sum_p + 2))
    with pytest.raises(ValueError, match=r"totals\.sum_margin must have shape \(4,\)"):
        emphasis.TrainingDynamics.from_totals(3, totals._replace(sum_margin=np.zeros(3)))

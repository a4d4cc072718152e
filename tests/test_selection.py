"""Tests for emphasis.suggest.candidate_settings (the paper's grids) and emphasis.selection
(select_setting, Selection, estimate_clean_accuracy: choosing on a noisy validation split)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emphasis
from emphasis.selection import Selection, estimate_clean_accuracy, select_setting
from emphasis.suggest import (
    FEW_CLASSES_GRID,
    MANY_CLASSES_GRID,
    candidate_settings,
    suggest,
)

# The paper's grids, written out by hand: lam -> betas.
PAPER_FEW = {  # CIFAR-10, Figures 7-10
    0.0: (0.5, 1.0, 2.0, 4.0),
    0.5: (4.0, 8.0, 12.0, 16.0),
    1.0: (8.0, 12.0, 16.0, 20.0),
    2.0: (12.0, 16.0, 20.0, 24.0),
}
PAPER_MANY = {  # CIFAR-100, Table 10
    lam: (2.0, 4.0, 6.0, 8.0, 10.0) for lam in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
}

CLASS_COUNTS = [2, 10, 14, 49, 50, 100]
RATES = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95]


def paper_grid(k: int) -> dict[float, tuple[float, ...]]:
    return PAPER_MANY if k >= 50 else PAPER_FEW


def grid_pairs(k: int) -> list[tuple[float, float]]:
    grid = paper_grid(k)
    return [(beta, lam) for lam in sorted(grid) for beta in grid[lam]]


def grid_coordinates(k: int, setting: tuple[float, float]) -> tuple[int, int]:
    """(index of the lam row, index of beta within that row); off-grid: the nearest point."""
    grid = paper_grid(k)
    rows = sorted(grid)
    beta, lam = setting
    row = min(range(len(rows)), key=lambda i: abs(rows[i] - lam))
    betas = grid[rows[row]]
    col = min(range(len(betas)), key=lambda j: abs(betas[j] - beta))
    return row, col


# ---------------------------------------------------------------------------
# the grids
# ---------------------------------------------------------------------------


def test_few_classes_grid_is_the_papers() -> None:
    assert dict(FEW_CLASSES_GRID) == PAPER_FEW
    assert list(FEW_CLASSES_GRID) == sorted(PAPER_FEW)
    assert sum(len(b) for b in FEW_CLASSES_GRID.values()) == 16


def test_many_classes_grid_is_the_papers() -> None:
    assert dict(MANY_CLASSES_GRID) == PAPER_MANY
    assert sorted(MANY_CLASSES_GRID) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert sum(len(b) for b in MANY_CLASSES_GRID.values()) == 30


@pytest.mark.parametrize("grid", [FEW_CLASSES_GRID, MANY_CLASSES_GRID])
def test_grids_are_read_only(grid) -> None:
    before = dict(grid)
    with pytest.raises(TypeError):
        grid[3.0] = (1.0,)
    with pytest.raises(TypeError):
        del grid[next(iter(grid))]
    for betas in grid.values():
        assert isinstance(betas, tuple)
    assert dict(grid) == before


# ---------------------------------------------------------------------------
# candidate_settings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_candidates_without_rate_are_the_grid_row_by_row(k: int) -> None:
    result = candidate_settings(k)
    assert result == grid_pairs(k)
    assert len(result) == (30 if k >= 50 else 16)
    assert all(type(s) is tuple and len(s) == 2 for s in result)
    assert all(type(v) is float for s in result for v in s)


def test_candidates_docstring_examples() -> None:
    grid = candidate_settings(10, noise_rate=0.4)
    assert len(grid) == 16
    assert grid[:3] == [(16.0, 1.0), (12.0, 1.0), (20.0, 1.0)]
    assert candidate_settings(10)[:2] == [(0.5, 0.0), (1.0, 0.0)]
    assert len(candidate_settings(100)) == 30


def test_candidates_full_order_few_classes_at_40_percent() -> None:
    # Worked out by hand: suggestion (16, 1) sits at row 2, column 2.
    assert candidate_settings(10, noise_rate=0.4) == [
        (16.0, 1.0),  # distance 0
        (12.0, 1.0),  # distance 1, same row
        (20.0, 1.0),
        (12.0, 0.5),  # distance 1, one row away, ascending lam
        (20.0, 2.0),
        (8.0, 1.0),  # distance 2, same row
        (8.0, 0.5),  # distance 2, one row away
        (16.0, 0.5),
        (16.0, 2.0),
        (24.0, 2.0),
        (2.0, 0.0),  # distance 2, two rows away
        (4.0, 0.5),  # distance 3, one row away
        (12.0, 2.0),
        (1.0, 0.0),  # distance 3, two rows away
        (4.0, 0.0),
        (0.5, 0.0),  # distance 4
    ]


def test_candidates_many_classes_clean_adds_the_suggestion() -> None:
    result = candidate_settings(100, noise_rate=0.0)
    assert result[0] == (2.0, 0.0)
    assert (2.0, 0.0) not in grid_pairs(100)
    assert len(result) == 31
    assert set(result[1:]) == set(grid_pairs(100))
    assert result[1] == (2.0, 0.1)  # the grid point next to the added one


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_candidates_ordered_around_suggest(k: int, rate: float) -> None:
    result = candidate_settings(k, noise_rate=rate)
    start = suggest(rate, k)
    grid = grid_pairs(k)

    assert result[0] == start
    assert len(result) == len(set(result))  # each listed once
    assert set(result) == set(grid) | {start}
    assert len(result) == len(grid) + (start not in grid)
    assert all(type(s) is tuple and len(s) == 2 for s in result)
    assert all(type(v) is float for s in result for v in s)

    row0, col0 = grid_coordinates(k, start)

    def key(setting: tuple[float, float]) -> tuple[int, int, float, float]:
        row, col = grid_coordinates(k, setting)
        return (abs(row - row0) + abs(col - col0), abs(row - row0), setting[1], setting[0])

    rest = result[1:]
    distances = [key(s)[0] for s in rest]
    assert distances == sorted(distances)  # non-decreasing grid-step distance
    keys = [key(s) for s in rest]
    assert keys == sorted(keys)  # ties: nearer row, then (lam, beta)
    assert rest == sorted(rest, key=key)


def test_candidates_accept_numpy_scalars() -> None:
    assert candidate_settings(np.int64(10), np.float32(0.4)) == candidate_settings(10, 0.4)
    assert candidate_settings(np.int32(100)) == grid_pairs(100)


#: num_classes values refused by candidate_settings and estimate_clean_accuracy alike.
BAD_NUM_CLASSES = [
    (1, ValueError),
    (0, ValueError),
    (True, TypeError),
    (2.5, TypeError),
    ("10", TypeError),
    ([10], TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize(("k", "error"), BAD_NUM_CLASSES)
@pytest.mark.parametrize("rate", [None, 0.2])
def test_candidates_bad_num_classes(k, error: type, rate) -> None:
    with pytest.raises(error, match="num_classes"):
        candidate_settings(k, noise_rate=rate)


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        (1.0, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (True, TypeError),
        ([0.2], TypeError),
        (np.array([0.2]), TypeError),
    ],
)
@pytest.mark.parametrize("k", [10, 100])
def test_candidates_bad_noise_rate(rate, error: type, k: int) -> None:
    with pytest.raises(error, match="noise_rate"):
        candidate_settings(k, noise_rate=rate)


# ---------------------------------------------------------------------------
# select_setting
# ---------------------------------------------------------------------------


def test_selection_is_a_frozen_record() -> None:
    pick = select_setting(["a", "b"], [0.2, 0.3])
    assert isinstance(pick, Selection)
    fields = [f.name for f in dataclasses.fields(Selection)]
    assert fields == ["index", "candidate", "accuracy", "epoch_index", "tied"]
    assert dataclasses.astuple(pick) == (1, "b", 0.3, None, (1,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        pick.index = 0  # type: ignore[misc]
    assert emphasis.select_setting is select_setting
    assert emphasis.Selection is Selection


def test_select_single_accuracies() -> None:
    pick = select_setting([(16.0, 1.0), (12.0, 1.0), (20.0, 1.0)], [0.71, 0.74, 0.74])
    assert pick == Selection(1, (12.0, 1.0), 0.74, None, (1, 2))
    assert type(pick.accuracy) is float

    pick = select_setting(["x", "y", "z"], [0.9, 0.5, 0.8])
    assert (pick.index, pick.candidate, pick.accuracy, pick.tied) == (0, "x", 0.9, (0,))
    assert pick.epoch_index is None


def test_select_one_candidate() -> None:
    assert select_setting(["only"], [0.0]) == Selection(0, "only", 0.0, None, (0,))
    assert select_setting(("only",), [[0.1, 0.3, 0.2]]) == Selection(0, "only", 0.3, 1, (0,))


def test_select_all_tied_picks_first() -> None:
    pick = select_setting(["a", "b", "c", "d"], [0.5, 0.5, 0.5, 0.5])
    assert pick.index == 0
    assert pick.candidate == "a"
    assert pick.tied == (0, 1, 2, 3)


def test_select_curves_docstring_example() -> None:
    curves = [[0.60, 0.70, 0.65], [0.50, 0.72, 0.72, 0.69]]
    pick = select_setting(["gce q=0.7", "gr (16, 1)"], curves)
    assert pick == Selection(1, "gr (16, 1)", 0.72, 1, (1,))


def test_select_curves_early_stopping_first_max() -> None:
    curves = [
        [0.10, 0.40, 0.55, 0.30],  # best 0.55 at 2
        [0.20, 0.60, 0.50, 0.60, 0.60, 0.10],  # best 0.60, first at 1
        [0.58],  # a run that stopped after one epoch
    ]
    pick = select_setting(["a", "b", "c"], curves)
    assert pick.index == 1
    assert pick.candidate == "b"
    assert pick.accuracy == 0.60
    assert pick.epoch_index == 1
    assert pick.tied == (1,)

    pick = select_setting(["a", "b", "c"], curves, tolerance=0.03)
    assert pick.tied == (1, 2)
    assert (pick.index, pick.accuracy, pick.epoch_index) == (1, 0.60, 1)

    pick = select_setting(["a", "b", "c"], curves, tolerance=0.06)
    assert pick.tied == (0, 1, 2)
    assert (pick.index, pick.candidate, pick.accuracy, pick.epoch_index) == (0, "a", 0.55, 2)


def test_select_curves_ragged_lengths() -> None:
    curves = [[0.3, 0.4], [0.1, 0.2, 0.3, 0.45, 0.44], [0.5, 0.41, 0.2]]
    pick = select_setting([1, 2, 3], curves)
    assert pick == Selection(2, 3, 0.5, 0, (2,))


def test_select_curves_numpy_2d() -> None:
    curves = np.array(
        [
            [0.50, 0.61, 0.60],
            [0.40, 0.55, 0.66],
            [0.66, 0.10, 0.66],
        ]
    )
    pick = select_setting(["a", "b", "c"], curves)
    assert pick.index == 1
    assert pick.candidate == "b"
    assert pick.accuracy == pytest.approx(0.66, abs=0) and type(pick.accuracy) is float
    assert pick.epoch_index == 2
    assert pick.tied == (1, 2)

    pick = select_setting(["a", "b", "c"], curves[::-1].copy())
    assert (pick.index, pick.candidate, pick.epoch_index, pick.tied) == (0, "a", 0, (0, 1))


def test_select_curves_as_numpy_rows_and_tuples() -> None:
    pick = select_setting(["a", "b"], [np.array([0.2, 0.9]), (0.1, 0.3, 0.95)])
    assert (pick.index, pick.accuracy, pick.epoch_index) == (1, 0.95, 2)


@pytest.mark.parametrize(
    ("tolerance", "index", "tied"),
    [(0.02, 0, (0, 1)), (0.005, 1, (1,)), (0.0, 1, (1,))],
)
def test_select_tolerance(tolerance: float, index: int, tied: tuple[int, ...]) -> None:
    pick = select_setting(["a", "b"], [0.70, 0.71], tolerance=tolerance)
    assert pick.index == index
    assert pick.candidate == ["a", "b"][index]
    assert pick.accuracy == [0.70, 0.71][index]
    assert pick.tied == tied


def test_select_tolerance_keeps_far_candidates_out() -> None:
    pick = select_setting(["a", "b", "c", "d"], [0.60, 0.80, 0.79, 0.70], tolerance=0.02)
    assert pick.index == 1
    assert pick.tied == (1, 2)


def test_select_accepts_numpy_scalars_and_0d_arrays() -> None:
    pick = select_setting(["a", "b", "c"], [np.float32(0.5), np.float64(0.75), np.array(0.6)])
    assert pick.index == 1
    assert pick.accuracy == 0.75
    assert type(pick.accuracy) is float

    pick = select_setting(["a", "b"], np.array([0.9, 0.3]))
    assert (pick.index, pick.accuracy, pick.epoch_index) == (0, 0.9, None)

    pick = select_setting(["a", "b"], [[np.array(0.2), np.float16(0.5)], [np.array(0.4)]])
    assert (pick.index, pick.accuracy, pick.epoch_index) == (0, 0.5, 1)

    pick = select_setting(["a", "b"], [0.70, 0.71], tolerance=np.float64(0.02))
    assert pick.index == 0
    pick = select_setting(["a", "b"], [0.70, 0.71], tolerance=np.array(0.005))
    assert pick.index == 1


def test_select_accepts_0d_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    pick = select_setting(["a", "b"], [torch.tensor(0.25), torch.tensor(0.5)])
    assert pick.index == 1
    assert pick.accuracy == 0.5
    assert type(pick.accuracy) is float
    assert pick.epoch_index is None

    curves = [torch.tensor([0.1, 0.5, 0.5]), [torch.tensor(0.3), torch.tensor(0.25)]]
    pick = select_setting(["a", "b"], curves)
    assert (pick.index, pick.accuracy, pick.epoch_index) == (0, 0.5, 1)


def reference_select(curves: list[list[float]], tolerance: float):
    """Brute force: every candidate's best score, every tie, every first epoch."""
    best = []
    first = []
    for curve in curves:
        top_here = curve[0]
        at = 0
        for j, value in enumerate(curve):
            if value > top_here:
                top_here, at = value, j
        best.append(top_here)
        first.append(at)
    top = best[0]
    for value in best:
        if value > top:
            top = value
    tied = tuple(i for i in range(len(curves)) if best[i] >= top - tolerance)
    return tied[0], best[tied[0]], first[tied[0]], tied


fraction = st.floats(0.0, 1.0)


@settings(max_examples=50)
@given(
    curves=st.lists(st.lists(fraction, min_size=1, max_size=6), min_size=1, max_size=6),
    tolerance=st.one_of(st.just(0.0), st.floats(0.0, 0.3)),
    single=st.booleans(),
)
def test_select_matches_brute_force(curves, tolerance: float, single: bool) -> None:
    candidates = [f"c{i}" for i in range(len(curves))]
    if single:
        curves = [[c[0]] for c in curves]
        accuracies = [c[0] for c in curves]
    else:
        accuracies = curves
    index, accuracy, epoch, tied = reference_select(curves, tolerance)
    pick = select_setting(candidates, accuracies, tolerance=tolerance)
    assert pick.index == index
    assert pick.candidate == candidates[index]
    assert pick.accuracy == accuracy
    assert pick.epoch_index == (None if single else epoch)
    assert pick.tied == tied
    assert pick.tied[0] == pick.index


@pytest.mark.parametrize(
    ("candidates", "accuracies", "error", "match"),
    [
        ([], [], ValueError, "candidates is empty"),
        ((), [0.5], ValueError, "candidates is empty"),
        ("ab", [0.1, 0.2], TypeError, "candidates must be a sequence"),
        (b"ab", [0.1, 0.2], TypeError, "candidates must be a sequence"),
        ({"a", "b"}, [0.1, 0.2], TypeError, "candidates must be a sequence"),
        (3, [0.1], TypeError, "candidates must be a sequence"),
        (None, [0.1], TypeError, "candidates must be a sequence"),
        (["a", "b", "c"], [0.1, 0.2], ValueError, r"accuracies has 2 entries for 3 candidates"),
        (["a"], [0.1, 0.2], ValueError, r"accuracies has 2 entries for 1 candidates"),
        (["a", "b"], [], ValueError, r"accuracies has 0 entries for 2 candidates"),
        (["a", "b"], 0.5, TypeError, "accuracies must be a sequence"),
        (["a", "b"], "0.5", TypeError, "accuracies must be a sequence"),
        (["a", "b"], [0.5, float("nan")], ValueError, r"accuracies\[1\] is NaN"),
        (["a", "b"], [float("nan"), 0.5], ValueError, r"accuracies\[0\] is NaN"),
        (["a", "b"], [0.5, np.float32("nan")], ValueError, r"accuracies\[1\] is NaN"),
        (
            ["a", "b"],
            [[0.1, 0.2, 0.3], [0.1, 0.2, float("nan")]],
            ValueError,
            r"accuracies\[1\]\[2\] is NaN",
        ),
        (
            ["a", "b"],
            np.array([[0.1, np.nan], [0.2, 0.3]]),
            ValueError,
            r"accuracies\[0\]\[1\] is NaN",
        ),
        (["a", "b"], [71.0, 0.5], ValueError, r"accuracies\[0\].*percentage"),
        (["a", "b"], [[0.5, 0.7], [0.6, 74.5]], ValueError, r"accuracies\[1\]\[1\].*percentage"),
        (
            ["a", "b"],
            [0.5, 1.0000001],
            ValueError,
            r"accuracies\[1\] must be a fraction in \[0, 1\]",
        ),
        (["a", "b"], [0.5, -0.01], ValueError, r"accuracies\[1\] must be a fraction in \[0, 1\]"),
        (["a", "b"], [[0.5], [-0.2, 0.3]], ValueError, r"accuracies\[1\]\[0\] must be a fraction"),
        (["a", "b"], [0.5, float("inf")], ValueError, r"accuracies\[1\] must be a fraction"),
        (["a", "b"], [[0.5, 0.6], []], ValueError, r"accuracies\[1\] is an empty curve"),
        (["a", "b"], [[], [0.5]], ValueError, r"accuracies\[0\] is an empty curve"),
        (["a", "b"], [[0.5, 0.6], 0.7], ValueError, r"accuracies\[1\] is a number"),
        (["a", "b"], [0.7, [0.5, 0.6]], ValueError, r"accuracies\[1\] is not a number"),
        (
            ["a", "b"],
            [[0.5, True], [0.6]],
            TypeError,
            r"accuracies\[0\]\[1\] must be a real number",
        ),
        (["a", "b"], [0.5, "0.6"], (TypeError, ValueError), r"accuracies\[1\]"),
        (["a", "b"], [0.5, True], (TypeError, ValueError), r"accuracies\[1\]"),
        (["a", "b"], [0.5, np.array(True)], (TypeError, ValueError), r"accuracies\[1\]"),
        (
            ["a", "b"],
            [[0.5, "0.6"], [0.6]],
            TypeError,
            r"accuracies\[0\]\[1\] must be a real number",
        ),
        (["a", "b"], [0.5, 0.3 + 0.1j], (TypeError, ValueError), r"accuracies\[1\]"),
    ],
)
def test_select_bad_input(candidates, accuracies, error, match: str) -> None:
    with pytest.raises(error, match=match):
        select_setting(candidates, accuracies)


@pytest.mark.parametrize(
    "accuracies",
    [
        [True, False],
        [True, 0.5],
        [np.bool_(True), 0.5],
        [None, 0.5],
    ],
)
def test_select_bad_first_accuracy_is_named(accuracies) -> None:
    # Neither a number nor a curve: named, not taken for a curve and iterated.
    with pytest.raises(TypeError, match=r"accuracies\[0\] must be an accuracy"):
        select_setting(["a", "b"], accuracies)


def test_select_string_accuracies_are_refused() -> None:
    # A string entry is refused with a TypeError that names its position.
    with pytest.raises(TypeError, match=r"accuracies\[0\]"):
        select_setting(["a", "b"], ["0.5", "0.6"])
    with pytest.raises(TypeError, match=r"accuracies\[1\] must be an accuracy"):
        select_setting(["a", "b"], [[0.5], "0.6"])


@pytest.mark.parametrize(
    ("tolerance", "error"),
    [
        (-0.01, ValueError),
        (1.0, ValueError),
        (1.5, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ([0.01], TypeError),
        ("0.01", TypeError),
        (None, TypeError),
        (True, TypeError),
        (np.array([0.01]), TypeError),
    ],
)
def test_select_bad_tolerance(tolerance, error: type) -> None:
    with pytest.raises(error, match="tolerance"):
        select_setting(["a", "b"], [0.70, 0.71], tolerance=tolerance)


def test_select_tolerance_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        select_setting(["a", "b"], [0.70, 0.71], 0.02)  # type: ignore[misc]


# ---------------------------------------------------------------------------
# estimate_clean_accuracy
# ---------------------------------------------------------------------------


def forward(acc: float, rate: float, k: int) -> float:
    return (1 - rate) * acc + rate * (1 - acc) / (k - 1)


@pytest.mark.parametrize("k", [2, 3, 10, 14, 100])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.3, 0.4])
@pytest.mark.parametrize("acc", [0.0, 0.05, 0.3, 0.5, 0.77, 0.9, 1.0])
def test_estimate_round_trip_grid(acc: float, rate: float, k: int) -> None:
    estimate = estimate_clean_accuracy(forward(acc, rate, k), noise_rate=rate, num_classes=k)
    assert type(estimate) is float
    assert estimate == pytest.approx(acc, abs=1e-12)


@given(
    acc=st.floats(0.0, 1.0),
    share=st.floats(0.0, 0.9),
    k=st.integers(2, 1000),
)
def test_estimate_round_trip_property(acc: float, share: float, k: int) -> None:
    rate = share * (k - 1) / k  # at most 90% of the way to the no-signal rate
    estimate = estimate_clean_accuracy(forward(acc, rate, k), noise_rate=rate, num_classes=k)
    assert estimate == pytest.approx(acc, abs=1e-12)


def test_estimate_docstring_values() -> None:
    assert estimate_clean_accuracy(0.6, noise_rate=0.4, num_classes=10) == 1.0  # perfect
    assert estimate_clean_accuracy(0.5, noise_rate=0.4, num_classes=10) == pytest.approx(
        0.82, abs=5e-5
    )
    # no noise: the identity
    assert estimate_clean_accuracy(0.37, noise_rate=0.0, num_classes=5) == 0.37
    # chance level on noisy labels means chance level on clean ones
    assert estimate_clean_accuracy(0.1, noise_rate=0.6, num_classes=10) == pytest.approx(
        0.1, abs=1e-12
    )


def test_estimate_is_not_clipped() -> None:
    # Sampling noise can put the estimate outside [0, 1]; it is returned as is.
    high = estimate_clean_accuracy(0.62, noise_rate=0.4, num_classes=10)
    low = estimate_clean_accuracy(0.0, noise_rate=0.4, num_classes=10)
    assert high == pytest.approx((0.62 - 0.4 / 9) / (1 - 0.4 - 0.4 / 9), abs=1e-12)
    assert high > 1.0
    assert low == pytest.approx(-(0.4 / 9) / (1 - 0.4 - 0.4 / 9), abs=1e-12)
    assert low < 0.0


def test_estimate_accepts_numpy() -> None:
    value = estimate_clean_accuracy(
        np.float32(0.6), noise_rate=np.float64(0.4), num_classes=np.int64(10)
    )
    assert type(value) is float
    assert value == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("rate", "k"),
    [(0.5, 2), (0.6, 2), (0.9, 10), (0.95, 10), (2 / 3, 3), (0.99, 100), (1.0, 10)],
)
def test_estimate_refuses_rates_without_signal(rate: float, k: int) -> None:
    with pytest.raises(ValueError, match="noise_rate"):
        estimate_clean_accuracy(0.5, noise_rate=rate, num_classes=k)


def test_estimate_just_below_the_limit_works() -> None:
    rate = 0.89
    value = estimate_clean_accuracy(forward(0.7, rate, 10), noise_rate=rate, num_classes=10)
    assert value == pytest.approx(0.7, abs=1e-9)


@pytest.mark.parametrize(
    ("noisy", "error"),
    [
        ("0.5", TypeError),
        (None, TypeError),
        (True, TypeError),
        ([0.5], TypeError),
        (np.array([0.5]), TypeError),
        (float("nan"), ValueError),
        (1.5, ValueError),
        (50.0, ValueError),
        (-0.1, ValueError),
    ],
)
def test_estimate_bad_noisy_accuracy(noisy, error: type) -> None:
    with pytest.raises(error, match="noisy_accuracy"):
        estimate_clean_accuracy(noisy, noise_rate=0.2, num_classes=10)


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        ("0.2", TypeError),
        (None, TypeError),
        (True, TypeError),
        (float("nan"), ValueError),
        (-0.1, ValueError),
    ],
)
def test_estimate_bad_noise_rate(rate, error: type) -> None:
    with pytest.raises(error, match="noise_rate"):
        estimate_clean_accuracy(0.5, noise_rate=rate, num_classes=10)


@pytest.mark.parametrize(("k", "error"), BAD_NUM_CLASSES)
def test_estimate_bad_num_classes(k, error: type) -> None:
    with pytest.raises(error, match="num_classes"):
        estimate_clean_accuracy(0.5, noise_rate=0.2, num_classes=k)


def test_estimate_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        estimate_clean_accuracy(0.5, 0.2, 10)  # type: ignore[misc]


@pytest.mark.parametrize(("acc", "rate", "k"), [(0.8, 0.4, 10), (0.9, 0.3, 2)])
def test_estimate_recovers_accuracy_under_simulated_noise(acc: float, rate: float, k: int) -> None:
    n = 200_000
    rng = np.random.default_rng(12345)
    clean = rng.integers(0, k, size=n)
    correct = rng.random(n) < acc
    wrong = (clean + rng.integers(1, k, size=n)) % k  # uniform over the other classes
    predictions = np.where(correct, clean, wrong)
    noisy = emphasis.symmetric_noise(clean, rate, k, seed=2024).labels
    assert abs(float(np.mean(noisy != clean)) - rate) < 0.005  # the noise is as asked
    clean_accuracy = float(np.mean(predictions == clean))
    noisy_accuracy = float(np.mean(predictions == noisy))
    assert noisy_accuracy < clean_accuracy - 0.1  # the noise does hide accuracy
    estimate = estimate_clean_accuracy(noisy_accuracy, noise_rate=rate, num_classes=k)
    assert abs(estimate - acc) < 0.01
    assert not math.isclose(noisy_accuracy, acc, abs_tol=0.01)

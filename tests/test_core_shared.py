"""The pieces the core shares with the adapters: value checks, layouts, configs, docs.

Each is written once against the array namespace (here NumPy) and used by every
adapter; the adapters' own tests check them again through each framework.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import emphasis
from emphasis import kernel
from emphasis._docs import BLOCKS, document
from emphasis._layout import class_axes, label_layout, sample_weight_shape
from emphasis._validation import check_bool
from emphasis._value_checks import (
    Names,
    bad_logit_rows,
    bad_weights,
    label_message,
    labels_out_of_range,
    logits_row_message,
    not_one_hot,
    one_hot_message,
)

INF = math.inf

# Rows: fine, NaN off the label, +inf off the label, +inf at the label, every logit -inf.
LOGITS = np.array(
    [
        [1.0, 0.0, -1.0],
        [0.0, math.nan, 0.0],
        [0.0, 0.0, INF],
        [INF, 0.0, 0.0],
        [-INF, -INF, -INF],
    ]
)
LABELS = np.zeros(5, dtype=np.int64)


def _flags(valid, ignored_too=False):
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = kernel.relevance(LOGITS, LABELS, np)
    return bad_logit_rows(LOGITS[:, 0], rel.log_p, rel.rest_sum, valid, ignored_too=ignored_too)


def test_bad_logit_rows_flags_every_undefined_row_from_the_forward():
    assert _flags(np.ones(5, bool)).tolist() == [False, True, True, True, True]


def test_bad_logit_rows_ignored_rows():
    ignored = np.zeros(5, bool)
    assert not _flags(ignored).any()
    # An adapter that also differentiates ignored rows flags them, except rows of only -inf.
    assert _flags(ignored, ignored_too=True).tolist() == [False, True, True, True, False]


def test_logits_row_message_names_the_problem_example_and_class():
    names = Names(logits="input", labels="target")
    assert logits_row_message(LOGITS[1], 1, names) == (
        "input contains NaN (example 1); expected finite values or -inf, but example 1 has "
        "NaN at class 1"
    )
    assert "contains +inf (example 2)" in logits_row_message(LOGITS[2], 2, names)
    assert "example 4 has every logit -inf" in logits_row_message(LOGITS[4], 4)
    nan_first = logits_row_message(np.array([INF, math.nan]), 0)
    assert nan_first.startswith("logits contain NaN")


def test_label_checks_and_message():
    labels = np.array([0, 3, -1, -100])
    valid = labels != -100
    assert labels_out_of_range(labels, valid, 3).tolist() == [False, True, True, False]
    keras = Names(labels="y_true", ignore_index="ignore_class", labels_must="must hold")
    assert (
        label_message(3, 7, 5, 2, keras)
        == "y_true must hold in [0, 2] or ignore_class=7, got 5 (example 2)"
    )
    assert label_message(3, None, 5) == "labels must be class indices in [0, 2], got 5"


def test_one_hot_rows_and_weights():
    target = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 0], [0.5, 0.5, 0.0], [0, 0, 2]])
    assert not_one_hot(target, 1, np).tolist() == [False, True, True, True, True]
    assert not_one_hot(target.T, 0, np).tolist() == [False, True, True, True, True]
    assert "example 3 is not one-hot" in one_hot_message(Names(), 3, target[3])
    weights = np.array([0.0, 1.0, -1.0, INF, math.nan])
    assert bad_weights(weights).tolist() == [False, False, True, True, True]


def test_class_axes():
    assert class_axes(-1, (4, 3)) == 1
    assert class_axes((1, 2), (4, 3, 2), several=True) == (1, 2)
    with pytest.raises(TypeError, match="axis must be an int"):
        class_axes(1.0, (4, 3))
    with pytest.raises(TypeError, match="axis must be an int"):
        class_axes(True, (4, 3))
    with pytest.raises(TypeError, match="axis must be an int"):
        class_axes((1,), (4, 3))  # a tuple only where several axes are allowed
    with pytest.raises(ValueError, match=r"axis 2 is out of range for y_pred of shape \(4, 3\)"):
        class_axes(2, (4, 3), "y_pred")
    with pytest.raises(ValueError, match="class axis, got a scalar"):
        class_axes(0, ())
    with pytest.raises(ValueError, match="must not repeat"):
        class_axes((1, -1), (4, 3), several=True)


@pytest.mark.parametrize(
    ("labels", "logits", "axis", "layout"),
    [
        ((4,), (4, 3), 1, "sparse"),
        ((4, 1), (4, 3), 1, "column"),
        ((4, 3), (4, 3), 1, "one-hot"),
        ((None,), (None, 3), 1, "sparse"),
        ((4, 5), (4, 3, 5), 1, "sparse"),
        ((4, 1), (4, 1), 1, "column"),
    ],
)
def test_label_layout(labels, logits, axis, layout):
    assert label_layout(labels, logits, axis) == layout


def test_label_layout_refuses():
    with pytest.raises(ValueError, match=r"target must hold integer class indices of shape \(4,\)"):
        label_layout((3,), (4, 3), 1, ("input", "target"))
    with pytest.raises(ValueError, match="shape"):
        label_layout((4, 1), (4, 3), 1, column=False)


def test_sample_weight_shape():
    assert sample_weight_shape((4,), (4, 5)) == (4, 1)
    assert sample_weight_shape((4, 1), (4,)) == (4,)
    assert sample_weight_shape((), (4,)) == ()
    assert sample_weight_shape((None, 5), (None, 5)) == (None, 5)
    with pytest.raises(ValueError, match="sample_weight must broadcast"):
        sample_weight_shape((2, 3, 4), (2,))


@pytest.mark.parametrize(
    "scheme",
    [
        emphasis.CCE(),
        emphasis.GCE(q=0.3),
        emphasis.GR(beta=4.0, lam=1.0, transform="identity", eps=0.0),
        emphasis.GR(reported_loss=emphasis.GCE(q=0.5)),
        emphasis.GR(reported_loss="mae"),
    ],
)
def test_scheme_config_round_trips_through_json(scheme):
    config = json.loads(json.dumps(scheme.config()))
    assert type(scheme)(**config) == scheme


def test_reported_loss_config_is_checked():
    with pytest.raises(ValueError, match="reported_loss must be"):
        emphasis.GR(reported_loss={"name": "gce", "p": 0.5})
    with pytest.raises(ValueError, match="reported_loss must be"):
        emphasis.GR(reported_loss={"name": "gr"})


def test_document_fills_blocks_with_the_framework_phrase():
    def f():
        pass

    f.__doc__ = "Args:\n    {GR_ARGS}\n    {OWN}\n"
    document(scalar="a float or a 0-d tensor", OWN="own: a block.\n    more.")(f)
    assert f.__doc__.startswith(
        "Args:\n    beta: emphasis spread, >= 0 (the paper uses 2 to 16); a"
    )
    assert "{" not in f.__doc__
    assert "\n    own: a block.\n        more.\n" in f.__doc__
    assert f.__doc__.count("a float or a 0-d tensor") == BLOCKS["GR_ARGS"].count("{SCALAR}")


def test_check_bool():
    assert check_bool("x", np.bool_(True)) is True
    with pytest.raises(TypeError, match="x must be True or False, got 1"):
        check_bool("x", 1)

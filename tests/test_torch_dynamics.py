"""emphasis_torch.TrainingDynamics: the core's dynamics, accumulated on the device."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import emphasis  # noqa: E402
import emphasis_torch  # noqa: E402

pytestmark = pytest.mark.torch


def _batches(seed=0, n=20, c=5, steps=6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    for _ in range(steps):
        index = rng.permutation(n)[: rng.integers(1, n + 1)]
        logits = rng.normal(size=(index.size, c)) * 4
        logits[0, 1] = -math.inf
        yield index, logits, labels[index]


def test_matches_the_core():
    core = emphasis.TrainingDynamics(20, 5)
    device = emphasis_torch.TrainingDynamics(20, 5)
    for index, logits, labels in _batches():
        core.update(index, logits, labels)
        device.update(
            torch.tensor(index), torch.tensor(logits, dtype=torch.float32), torch.tensor(labels)
        )
    ours = device.numpy()
    # float32 logits: the totals agree with the core's float64 to float32 rounding.
    np.testing.assert_allclose(ours.scores(), core.scores(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.mean_p, core.mean_p, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ours.suggested_labels(), core.suggested_labels())
    np.testing.assert_array_equal(ours.count, core.count)
    np.testing.assert_allclose(ours.disagreement, core.disagreement)


def test_update_never_reads_the_device():
    """No host synchronisation: no Python-level read, and a full graph under torch.compile."""
    dynamics = emphasis_torch.TrainingDynamics(20, 5)
    reads = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")
    batches = list(_batches())
    saved = {name: getattr(torch.Tensor, name) for name in reads}

    def forbidden(*args, **kwargs):
        raise AssertionError("update read a tensor back to the host")

    try:
        for name in reads:
            setattr(torch.Tensor, name, forbidden)
        for index, logits, labels in batches[:3]:
            dynamics.update(torch.tensor(index), torch.tensor(logits), torch.tensor(labels))
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)
    torch._dynamo.reset()
    compiled = torch.compile(dynamics.update, fullgraph=True)  # a host read would break it
    for index, logits, labels in batches[3:]:
        compiled(torch.tensor(index), torch.tensor(logits), torch.tensor(labels))
    core = emphasis.TrainingDynamics(20, 5)
    for index, logits, labels in batches:
        core.update(index, logits, labels)
    np.testing.assert_allclose(dynamics.numpy().scores(), core.scores(), rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(indices=[0, 20]), r"indices must be in \[0, 20\)"),
        (dict(indices=[-1, 0]), "indices must be in"),
        (dict(indices=[3, 3]), "indices must not repeat"),
        (dict(labels=[0, 5]), r"labels must be class indices in \[0, 5\)"),
        (dict(logits=[[0.0, math.nan, 0, 0, 0], [0.0] * 5]), "logits must be finite or -inf"),
        (dict(logits=[[0.0, math.inf, 0, 0, 0], [0.0] * 5]), "logits must be finite or -inf"),
    ],
)
def test_a_bad_update_is_left_out_and_reported_by_name(change, match):
    dynamics = emphasis_torch.TrainingDynamics(20, 5)
    good = dict(indices=[1, 2], logits=[[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]], labels=[0, 1])
    dynamics.update(*(torch.tensor(v) for v in good.values()))
    bad = good | change
    dynamics.update(*(torch.tensor(bad[k]) for k in ("indices", "logits", "labels")))
    with pytest.raises(ValueError, match=f"update 2 was refused.*{match}"):
        dynamics.check()
    with pytest.raises(ValueError, match=match):
        dynamics.numpy()
    totals = (dynamics.updates, dynamics.sum_p, dynamics.labels)
    assert totals[0].sum() == 2 and torch.isfinite(totals[1]).all()  # only the first update


def test_a_changed_label_is_refused():
    dynamics = emphasis_torch.TrainingDynamics(4, 2)
    dynamics.update(torch.tensor([0]), torch.zeros(1, 2), torch.tensor([0]))
    dynamics.update(torch.tensor([0]), torch.zeros(1, 2), torch.tensor([1]))
    with pytest.raises(ValueError, match="seen before with another label"):
        dynamics.check()
    assert dynamics.labels[0] == 0


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        (
            (np.array([0]), torch.zeros(1, 2), torch.tensor([0])),
            TypeError,
            "indices must be a torch",
        ),
        (
            (torch.tensor([0.0]), torch.zeros(1, 2), torch.tensor([0])),
            TypeError,
            "indices must hold integers",
        ),
        (
            (torch.tensor([0]), torch.zeros(1, 3), torch.tensor([0])),
            ValueError,
            r"logits must have shape \(M, 2\)",
        ),
        (
            (torch.tensor([0]), torch.zeros(1, 2, dtype=torch.long), torch.tensor([0])),
            TypeError,
            "floating-point",
        ),
        (
            (torch.tensor([0, 1]), torch.zeros(1, 2), torch.tensor([0])),
            ValueError,
            r"indices must have shape \(1,\)",
        ),
    ],
)
def test_static_checks_raise_at_once(arguments, error, match):
    with pytest.raises(error, match=match):
        emphasis_torch.TrainingDynamics(4, 2).update(*arguments)


def test_in_a_training_loop_it_finds_the_flipped_labels():
    torch.manual_seed(0)
    n, c = 400, 4
    centres = torch.randn(c, 8) * 3
    clean = torch.randint(0, c, (n,))
    x = centres[clean] + torch.randn(n, 8)
    noisy = emphasis.symmetric_noise(clean.numpy(), 0.3, seed=1)
    y = torch.tensor(noisy.labels)
    model = torch.nn.Linear(8, c)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = emphasis_torch.GRLoss(beta=8.0, lam=1.0)
    dynamics = emphasis_torch.TrainingDynamics(n, c)
    for _ in range(20):
        for batch in torch.randperm(n).split(50):
            logits = model(x[batch])
            loss = loss_fn(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            dynamics.update(batch, logits, y[batch])
    found = emphasis.find_label_issues(dynamics.numpy())
    assert noisy.flipped[found].mean() > 0.9
    assert abs(found.size / n - noisy.realised_rate) < 0.05


def test_the_readme_example_runs():
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "label-issues.md"
    section = page.read_text().split("## Recording the dynamics in each framework", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "docs/label-issues.md torch dynamics", "exec"), namespace)
    assert namespace["dynamics"].numpy().count.tolist() == [3] * 256

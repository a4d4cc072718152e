"""The Triton kernels of emphasis_torch against the float64 core, in Triton's interpreter.

``TRITON_INTERPRET=1`` runs the kernels on CPU tensors (slowly), so they are tested
here without a GPU; on a CUDA machine the same kernels compile for the device.
Rows per case are kept small: the interpreter costs milliseconds per row.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("needs triton and torch", allow_module_level=True)
os.environ.setdefault("TRITON_INTERPRET", "1")  # before emphasis_torch._triton is imported

import torch

import emphasis
from emphasis import kernel
from emphasis_torch import _triton
from emphasis_torch._namespace import TorchNamespace

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
    reason="Triton needs a GPU or TRITON_INTERPRET=1",
)
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
XP = TorchNamespace(torch.device(DEVICE))
INF = math.inf


def _batch(num_classes: int, rows: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rows plus the extremes: -inf entries, no other class left, p -> 1, p = 0."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, num_classes, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, num_classes, (rows,), generator=g)
    if num_classes >= 3:
        z[0, 1:] = -INF  # only the label left: p = 1, no other class
        y[0] = 0
        z[1, 2] = -INF  # a class ruled out
        z[2] = 0.0
        z[2, y[2]] = 60.0  # p -> 1 (1 - p underflows float32)
        z[3, y[3]] = -INF  # p = 0
        z[4] *= 2500.0  # |logits| up to 1e4
    return z, y


def _reference(z: torch.Tensor, y: torch.Tensor) -> kernel.RowStatistics:
    return kernel.row_statistics(z.to(torch.float64), y, TorchNamespace(z.device))


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    actual = actual.to(torch.float64)
    assert torch.equal(torch.isinf(actual), torch.isinf(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(actual[finite], expected[finite], rtol=rtol, atol=0)


@pytest.mark.parametrize(
    ("num_classes", "block"),
    [(1, None), (2, None), (15, 16), (16, 16), (17, 16), (40, 16), (100, None), (1000, 256)],
)
def test_row_statistics_match_the_core(num_classes, block):
    z, y = _batch(num_classes)
    ours = _triton.row_statistics(z.to(torch.float32).to(DEVICE), y.to(DEVICE), block=block)
    ref = _reference(z.to(torch.float32).to(torch.float64), y)
    _close(ours.z_label.cpu(), ref.z_label, 0)
    _close(ours.rest_max.cpu(), ref.rest_max, 0)  # a max: exact
    _close(ours.rest_sum.cpu(), ref.rest_sum, 1e-5)  # float32 sums in another order


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_inputs_compute_in_float32(dtype):
    z, y = _batch(33)
    z16 = z.clamp(-60000, 60000).to(dtype)
    ours = _triton.row_statistics(z16.to(DEVICE), y.to(DEVICE), block=16)
    assert ours.rest_sum.dtype == torch.float32
    _close(ours.rest_sum.cpu(), _reference(z16.to(torch.float64), y).rest_sum, 1e-5)


SCHEMES = [
    emphasis.CCE(),
    emphasis.MAE(),
    emphasis.GCE(q=0.7),
    emphasis.GR(beta=8.0, lam=0.5),
    emphasis.GR(beta=16.0, lam=1.0, eps=0.0),
    emphasis.GR(beta=100.0, lam=2.0),  # beta * h_max far beyond float32's exp range
    emphasis.GR(beta=4.0, lam=0.0, transform="identity", normalize=False),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
@pytest.mark.parametrize("num_classes", [2, 17, 40])
def test_forward_and_gradient_through_the_kernels_match_the_core(scheme, num_classes):
    """Statistics kernel -> the core's O(M) forward -> gradient kernel, against float64."""
    z, y = _batch(num_classes, seed=num_classes)
    valid = torch.ones(len(y), dtype=torch.bool)
    valid[-1] = False  # an ignored row
    z32 = z.to(torch.float32)
    stats = _triton.row_statistics(z32.to(DEVICE), y.to(DEVICE), block=16)
    ours = kernel.forward(z32, y, scheme, XP, valid=valid.to(DEVICE), stats=stats)
    grad = _triton.grad_rows(
        z32.to(DEVICE), y.to(DEVICE), ours.coef, ours.rest_max, ours.rest_sum, block=16
    )

    z64 = z32.to(torch.float64)
    ref = kernel.forward(z64, y, scheme, TorchNamespace(z.device), valid=valid)
    ref_grad = kernel.grad_rows(
        z64, y, ref.coef, ref.rest_max, ref.rest_sum, TorchNamespace(z.device)
    )
    np.testing.assert_allclose(ours.loss.cpu().double(), ref.loss, rtol=2e-5, atol=1e-6)
    # Gradient rows: normwise relative error of each row, as emphasis.check measures it.
    diff = (grad.cpu().double() - ref_grad).abs().sum(dim=1)
    norm = ref_grad.abs().sum(dim=1)
    assert torch.all(diff <= 1e-5 * norm + 1e-30), (diff / norm).max()
    assert torch.all(grad[-1] == 0)  # the ignored row
    assert torch.isfinite(grad).all()


def test_grad_rows_keeps_the_dtype_and_never_writes_the_logits():
    z, y = _batch(20)
    z16 = z.to(torch.bfloat16).to(DEVICE)
    before = z16.clone()
    stats = _triton.row_statistics(z16, y.to(DEVICE))
    rest_max = torch.where(torch.isinf(stats.rest_max), 0.0, stats.rest_max)
    grad = _triton.grad_rows(z16, y.to(DEVICE), torch.ones(12), rest_max, stats.rest_sum)
    assert grad.dtype == torch.bfloat16 and grad.data_ptr() != z16.data_ptr()
    assert torch.equal(z16, before)


def test_non_contiguous_rows_and_empty_batches():
    z, y = _batch(24)
    wide = torch.zeros(12, 48, dtype=torch.float32)
    wide[:, ::2] = z.to(torch.float32)
    strided = wide[:, ::2]  # class stride 2: copied to rows first
    ours = _triton.row_statistics(strided.to(DEVICE), y.to(DEVICE))
    _close(ours.rest_sum.cpu(), _reference(strided, y).rest_sum, 1e-5)
    empty = _triton.row_statistics(
        torch.zeros(0, 5, device=DEVICE), torch.zeros(0, dtype=torch.long)
    )
    assert empty.rest_sum.shape == (0,)


def test_refuses_what_it_does_not_compute():
    with pytest.raises(TypeError, match="16- or 32-bit floats"):
        _triton.row_statistics(
            torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"\(M, C\) rows"):
        _triton.row_statistics(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))


def test_operators_pass_opcheck_and_compile_without_graph_breaks():
    z, y = _batch(20, rows=8)
    z, y = z.to(torch.float32).to(DEVICE), y.to(DEVICE)
    stats = _triton.row_statistics_op(z, y)
    coef = torch.rand(8, device=DEVICE)
    torch.library.opcheck(_triton.row_statistics_op, (z, y))
    torch.library.opcheck(_triton.grad_rows_op, (z, y, coef, stats[1].clamp(min=0), stats[2]))
    scheme = emphasis.GR(beta=8.0, lam=0.5)

    def loss_and_grad(z, y):
        rows = kernel.RowStatistics(*_triton.row_statistics_op(z, y))
        out = kernel.forward(z, y, scheme, XP, stats=rows)
        return out.loss, _triton.grad_rows_op(z, y, out.coef, out.rest_max, out.rest_sum)

    eager = loss_and_grad(z, y)
    torch._dynamo.reset()
    compiled = torch.compile(loss_and_grad, fullgraph=True)(z, y)
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b)


import emphasis_torch  # noqa: E402


def _loss_and_grad(kernel_name, z, y, **kwargs):
    z = z.clone().requires_grad_(True)
    loss = emphasis_torch.gr_loss(z, y, kernel=kernel_name, **kwargs)
    loss.backward(torch.ones_like(loss), retain_graph=True)
    first = z.grad.clone()
    z.grad = None
    loss.backward(torch.ones_like(loss))  # retain_graph: a second backward, the same gradient
    torch.testing.assert_close(z.grad, first)
    return loss.detach(), first


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"beta": 12.0, "lam": 1.0, "eps": 0.0},
        {"ignore_index": 1, "reduction": "sum"},
        {"weight": torch.linspace(0.5, 2.0, 17)},
        {"reported_loss": "gce", "normalize": False, "reduction": "none"},
    ],
)
def test_the_loss_through_the_fused_kernels_equals_the_torch_ops(kwargs):
    z, y = _batch(17, seed=3)
    z, y = z.to(torch.float32).to(DEVICE), y.to(DEVICE)
    fused = _loss_and_grad("triton", z, y, **kwargs)
    plain = _loss_and_grad("torch", z, y, **kwargs)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)


def test_n_d_inputs_modules_and_compile_take_the_fused_path():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 5, 3, 4, generator=g).to(DEVICE)  # (N, C, d1, d2)
    y = torch.randint(0, 5, (2, 3, 4), generator=g).to(DEVICE)
    module = emphasis_torch.GRLoss(kernel="triton")
    assert "kernel='triton'" in repr(module)
    torch.testing.assert_close(module(z, y), emphasis_torch.gr_loss(z, y, kernel="torch"))
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda z, y: emphasis_torch.gr_loss(z, y, kernel="triton"), fullgraph=True
    )
    torch.testing.assert_close(compiled(z, y), emphasis_torch.gr_loss(z, y, kernel="torch"))


def test_auto_keeps_cpu_tensors_on_the_torch_ops_and_float64_refuses_triton():
    z, y = _batch(6)
    with pytest.raises(ValueError, match="kernel='triton' cannot run: it computes 16- and 32-bit"):
        emphasis_torch.gr_loss(z, y, kernel="triton")  # float64 stays on the torch ops
    with pytest.raises(ValueError, match="kernel must be one of"):
        emphasis_torch.GRLoss(kernel="cuda")


# -- on a GPU only (skipped in the interpreter) ---------------------------------------------

needs_cuda = pytest.mark.skipif(
    DEVICE != "cuda", reason="needs CUDA: compiled Triton kernels, not the interpreter"
)


@needs_cuda
def test_cuda_tensors_take_the_fused_kernels_by_default():
    z, y = _batch(1000, rows=64, seed=5)
    z, y = z.to(torch.float32).cuda(), y.cuda()
    torch.testing.assert_close(
        emphasis_torch.gr_loss(z, y), emphasis_torch.gr_loss(z, y, kernel="triton")
    )
    for dtype in (torch.float32, torch.bfloat16):
        fused = _loss_and_grad("auto", z.to(dtype), y)
        plain = _loss_and_grad("torch", z.to(dtype), y)
        for a, b in zip(fused, plain, strict=True):
            rtol = 2e-6 if dtype == torch.float32 else 1.6e-2
            torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=1e-7)


@needs_cuda
def test_int64_offsets_past_two_to_the_31_elements():
    """Rows beyond element 2**31 of the logits (triton#1058: int32 offsets wrap around)."""
    rows, classes = 2**16 + 4, 2**15  # 2**31 + 2**17 bfloat16 entries, 4 GiB
    if torch.cuda.get_device_properties(0).total_memory < 16 * 2**30:
        pytest.skip("needs 16 GiB of GPU memory")
    z = torch.zeros(rows, classes, dtype=torch.bfloat16, device="cuda")
    y = torch.zeros(rows, dtype=torch.long, device="cuda")
    z[-4:] = torch.randn(4, classes, device="cuda").to(torch.bfloat16)
    y[-4:] = torch.tensor([0, 1, classes // 2, classes - 1], device="cuda")
    stats = _triton.row_statistics(z, y)
    ref = _reference(z[-4:].cpu(), y[-4:].cpu())
    _close(stats.rest_max[-4:].cpu(), ref.rest_max, 0)
    _close(stats.rest_sum[-4:].cpu(), ref.rest_sum, 1e-5)
    coef = torch.ones(rows, device="cuda")
    grad = _triton.grad_rows(z, y, coef, stats.rest_max, stats.rest_sum)
    last = kernel.grad_rows(
        z[-4:].cpu().double(),
        y[-4:].cpu(),
        torch.ones(4, dtype=torch.float64),
        ref.rest_max,
        ref.rest_sum,
        TorchNamespace(torch.device("cpu")),
    )
    torch.testing.assert_close(grad[-4:].cpu().double(), last, rtol=1.6e-2, atol=1e-9)

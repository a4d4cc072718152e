"""``python -m emphasis.check``: do all installed backends give the same answer?

Runs a fixed, seeded set of cases (shapes including N-d and channels-last, logit
scales from 1e-3 to 1e4 with -inf entries, ignored labels, every scheme, every
reduction, every dtype) through each installed backend and mode, and compares the
loss values and logit gradients with the NumPy core evaluated on the same inputs.
Prints a table of backend x mode x dtype x max error x verdict, exits with status
1 on any disagreement, and writes JSON with ``--json``. Backends that run fused
kernels (emphasis_torch's Triton kernels: backend ``torch[triton]``, mode
``interpret`` in Triton's interpreter on CPU, ``cuda`` and ``compile-cuda`` on a GPU)
also run :func:`edge_cases`: C = 1 and 2, block edges, -inf rows, p -> 1 and p = 0,
eps = 0 and a beta beyond float32's exp range. ``--backends`` and ``--modes`` select.

Tolerances (derived, not tuned). The error measure is normwise per example,
``max_j |g_j - ref_j| / max_j |ref_j|`` (and the same for loss values), against
the core's result, which is within ~1.5 ulp of exact. The backends compute the
same algorithm in their working precision ``u`` (float32 for 16-bit inputs). Each
gradient entry is ``exp(x)`` times O(1) factors, and an error ``e`` in ``x``
becomes a relative error ``e`` of the entry. ``x`` is formed from differences of
logits and from log-weights ``log w = lam log p + log(1 - p)`` and their batch
mean, each up to ``2 Z`` in magnitude for logits with ``|z| <= Z``; so
``|e| <= 4 Z u`` (at least exp's argument range: 745 = 4 * 187 in float64, 104 =
4 * 26 in float32), plus ``8 u`` for the remaining operations:

    tolerance = (8 + 4 max(Z, Z0)) u + (two ulps of a 16-bit output)

with ``u = 2^-53`` (float64) or ``2^-24``, and the output allowance 2^-9 (float16),
2^-6 (bfloat16) relative to the row maximum: a 16-bit loss's incoming cotangent
and the 16-bit gradient are each rounded, half an ulp each, around float32 work. This is the conditioning of the
problem, not slack: perturbing logits of size Z by one ulp moves the result by
as much. At ordinary scales it is 8.4e-14 in float64 and 6.7e-6 in float32. Entries below the dtype's smallest normal number may be flushed to zero
(XLA on CPU does), so they may err by up to that number.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import emphasis
from emphasis import kernel
from emphasis.schemes import Scheme

__all__ = [
    "DTYPES",
    "ENTRY_POINT_GROUP",
    "Backend",
    "Case",
    "Result",
    "cases",
    "combos",
    "compare",
    "edge_cases",
    "main",
    "reduce_per_example",
    "run",
    "tolerance",
]

DTYPES = ("float64", "float32", "float16", "bfloat16")
#: unit roundoff of the compute dtype (16-bit inputs compute in float32)
_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-24, "bfloat16": 2.0**-24}
#: two ulps of a 16-bit output, relative to the row maximum: the incoming cotangent of a
#: 16-bit loss and the gradient are each rounded to the dtype (half an ulp each), and the
#: float32 work in between adds a little
_OUTPUT_ULP = {"float64": 0.0, "float32": 0.0, "float16": 2.0**-9, "bfloat16": 2.0**-6}


def tolerance(dtype: str, logits: np.ndarray) -> float:
    """The normwise tolerance for ``logits`` in ``dtype`` (see the module docstring)."""
    finite = np.abs(logits[np.isfinite(logits)])
    exp_range = 187.0 if dtype == "float64" else 26.0  # 4 x: exp's argument range, 745 / 104
    scale = max(float(finite.max(initial=0.0)), exp_range)
    return (8 + 4 * scale) * _ROUNDOFF[dtype] + _OUTPUT_ULP[dtype]


@dataclasses.dataclass(frozen=True)
class Case:
    """One comparison: inputs in float64 (rounded to ``dtype`` by the runner)."""

    name: str
    logits: np.ndarray
    labels: np.ndarray
    scheme: Scheme
    reduction: str
    axis: int
    ignore_index: int = -100


@dataclasses.dataclass
class Result:
    backend: str
    mode: str
    dtype: str
    cases: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ratio: float = 0.0  #: the largest error / tolerance over the cases
    worst: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.max_ratio <= 1.0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(verdict="ok" if self.ok else "FAIL")
        return out


SCHEMES: tuple[Scheme, ...] = (
    emphasis.CCE(),
    emphasis.MAE(),
    emphasis.GCE(q=0.7),
    emphasis.GR(beta=8.0, lam=0.5),
    emphasis.GR(beta=16.0, lam=1.0, eps=0.0),
    emphasis.GR(beta=3.0, lam=2.0, transform="identity", normalize=False),
)


def cases(seed: int = 0, count: int = 24) -> list[Case]:
    """A seeded, fixed list of cases covering layouts, scales, schemes and reductions."""
    rng = np.random.default_rng(seed)
    layouts = [((6, 5), 1), ((3, 4, 2, 3), 1), ((2, 3, 4), -1), ((1, 2), 1)]
    scales = [1e-3, 1.0, 30.0, 1e4]
    out = []
    for index in range(count):
        shape, axis = layouts[index % len(layouts)]
        scale = scales[(index // len(layouts)) % len(scales)]
        logits = rng.normal(size=shape) * scale
        classes = shape[axis]
        moved = np.moveaxis(logits, axis, -1)
        if index % 3 == 0:
            moved[rng.random(moved.shape) < 0.25] = -np.inf
        labels = rng.integers(0, classes, size=moved.shape[:-1])
        rows = moved.reshape(-1, classes)
        flat = labels.reshape(-1)
        dead = np.all(np.isneginf(rows), axis=1)
        rows[dead, flat[dead]] = 0.0
        if index % 4 == 1 and flat.size > 1:
            flat[0] = -100
        logits = np.moveaxis(rows.reshape(moved.shape), -1, axis)
        scheme = SCHEMES[index % len(SCHEMES)]
        reduction = ("mean", "sum", "none")[index % 3]
        name = f"#{index} {shape} axis={axis} scale={scale:g} {scheme!r} {reduction}"
        out.append(Case(name, logits, labels, scheme, reduction, axis))
    return out


#: Schemes of :func:`edge_cases`: eps = 0 (exact Eq. (6)) and a beta far beyond float32's
#: exp range (beta * h_max = 14.8 here, 100 * 4/27; GR(100, 2) normalises in log space).
EDGE_SCHEMES: tuple[Scheme, ...] = (
    emphasis.CCE(),
    emphasis.GCE(q=0.7),
    emphasis.GR(beta=8.0, lam=0.5),
    emphasis.GR(beta=16.0, lam=1.0, eps=0.0),
    emphasis.GR(beta=100.0, lam=2.0),
    emphasis.GR(beta=4.0, lam=0.0, transform="identity", normalize=False),
)
#: Row widths of :func:`edge_cases`: no other class (C = 1), C = 2, a row that fills a
#: power-of-two block of columns exactly (16), one column past it (17, 33: a masked tail),
#: and rows wider than the widest block a fused kernel loads at once (4096 + 1: two blocks).
EDGE_WIDTHS = (1, 2, 16, 17, 33, 4097)


def edge_cases(seed: int = 0) -> list[Case]:
    """Rows (M, C) at the edges a fused kernel must get right, one case per width and scheme.

    Each case holds a few rows: one whose other logits are all -inf (p = 1, a zero
    gradient), one with a class ruled out (-inf), one with p -> 1 (1 - p underflows
    float32), one with p = 0 (target -inf), an ignored row, and plain rows. Small on
    purpose: Triton's interpreter costs milliseconds per row.
    """
    rng = np.random.default_rng(seed)
    out = []
    for width in EDGE_WIDTHS:
        for index, scheme in enumerate(EDGE_SCHEMES):
            rows = 5 if width > 1000 else 7
            logits = rng.normal(size=(rows, width)) * 4
            labels = rng.integers(0, width, size=rows)
            if width >= 2:
                logits[0] = -np.inf
                logits[0, labels[0]] = 0.0  # only the label left: p = 1, zero gradient
                logits[1, (labels[1] + 1) % width] = -np.inf
                logits[2] = 0.0
                logits[2, labels[2]] = 60.0  # p -> 1
                logits[3, labels[3]] = -np.inf  # p = 0
            labels[-1] = -100  # an ignored row
            reduction = ("mean", "sum", "none")[index % 3]
            name = f"edge ({rows}, {width}) {scheme!r} {reduction}"
            out.append(Case(name, logits, labels, scheme, reduction, 1))
    return out


def _round_to(array: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 data to ``dtype`` and back (what the backend sees or returns)."""
    array = np.asarray(array, dtype=np.float64)
    with np.errstate(over="ignore"):  # overflow to inf is what the dtype does
        if dtype == "bfloat16":
            import ml_dtypes  # shipped with JAX and TensorFlow

            return array.astype(ml_dtypes.bfloat16).astype(np.float64)
        return array.astype(dtype).astype(np.float64)


def _smallest_normal(dtype: str) -> float:
    if dtype == "bfloat16":
        return float(np.finfo(np.float32).tiny)  # bfloat16 has float32's exponent range
    return float(np.finfo(dtype).tiny)


def _normwise(actual: np.ndarray, expected: np.ndarray, dtype: str) -> tuple[float, float]:
    """(max abs error, max normwise relative error); equal infinities and NaNs count as equal.

    A row whose largest entry is below the dtype's smallest normal number is
    measured against that number, and entries below it may be flushed to zero
    (XLA on CPU flushes subnormals): their error counts only beyond that number.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != expected {expected.shape}")
    # An infinite loss (p = 0 under CCE) and a mean over no valid example (NaN) must match.
    same_inf = (np.isinf(expected) & (actual == expected)) | (np.isnan(expected) & np.isnan(actual))
    with np.errstate(invalid="ignore"):  # inf - inf, replaced just below
        diff = np.where(same_inf, 0.0, np.abs(actual - expected))
    if np.isnan(diff).any():
        return math.inf, math.inf
    tiny = _smallest_normal(dtype)
    diff = np.where(np.abs(expected) < tiny, np.maximum(diff - tiny, 0.0), diff)
    finite = np.where(np.isfinite(expected), np.abs(expected), 0.0)
    scale = max(float(finite.max(initial=0.0)), tiny)
    return float(diff.max(initial=0.0)), float(diff.max(initial=0.0) / scale)


def compare(
    case: Case, dtype: str, loss: np.ndarray, grad: np.ndarray
) -> tuple[float, float, float]:
    """(max abs error, max normwise error, tolerance) of a backend's (loss, grad).

    The reference is the core on the same rounded inputs.
    """
    logits = _round_to(case.logits, dtype)
    ref_loss, ref_grad = emphasis.loss_and_grad(
        logits,
        case.labels,
        case.scheme,
        case.reduction,
        axis=case.axis,
        ignore_index=case.ignore_index,
    )
    # Gradients come back in the input dtype, so the reference is rounded (and may
    # overflow) as they are; a loss may be reduced in float32 or in its own dtype.
    abs_l, rel_l = min(
        _normwise(loss, ref_loss, dtype), _normwise(loss, _round_to(ref_loss, dtype), dtype)
    )
    ref_grad = _round_to(ref_grad, dtype)
    moved_ref = np.moveaxis(ref_grad, case.axis, -1).reshape(-1, ref_grad.shape[case.axis])
    moved = np.moveaxis(np.asarray(grad), case.axis, -1).reshape(moved_ref.shape)
    worst_abs, worst_rel = abs_l, rel_l
    for row, ref_row in zip(moved, moved_ref, strict=True):
        a, r = _normwise(row, ref_row, dtype)
        worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, r)
    return worst_abs, worst_rel, tolerance(dtype, logits)


#: runner(case, dtype, mode) -> (loss, grad) as NumPy arrays
Runner = Callable[[Case, str, str], tuple[np.ndarray, np.ndarray]]

#: The entry-point group through which an adapter announces its backends: each entry is
#: named after the module that must be importable (``torch``, ``keras``, ``jax``) and
#: points to a function returning a list of :class:`Backend`. The core names no adapter.
ENTRY_POINT_GROUP = "emphasis.check_backends"


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    module: str  #: the module whose presence makes the backend available
    combos: Callable[[], list[tuple[str, str]]]  #: (mode, dtype) pairs to run
    runner: Callable[[], Runner]  #: imports the framework lazily
    child_only: bool = False  #: run only when asked for alone (Keras in a child process)
    edge_cases: bool = False  #: its modes also run :func:`edge_cases` (fused kernels)
    #: the modes the default (quick) run checks, at :data:`MAIN_DTYPES`; the others, and
    #: a backend with none, run only with ``--full`` (or when ``--modes`` names them)
    main_modes: tuple[str, ...] = ()


#: the dtypes of the default run (``--full`` adds the 16-bit ones)
MAIN_DTYPES = ("float64", "float32")
#: cases of the default run: the first 16 of :func:`cases` hold every layout at every
#: logit scale (1e-3 to 1e4), every scheme and reduction, -inf entries and ignored labels
QUICK_CASES = 16
#: cases of ``--full`` (as before the quick default existed)
FULL_CASES = 24


def select(
    backend_combos: Sequence[tuple[str, str]],
    main_modes: Sequence[str],
    full: bool,
    modes: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """The (mode, dtype) pairs to run: all with ``full`` or named ``modes``, else the main ones.

    ``modes`` picks from the whole matrix (every dtype), as it always did.
    """
    if modes is not None:
        return [(m, d) for m, d in backend_combos if m in modes]
    if full:
        return list(backend_combos)
    return [(m, d) for m, d in backend_combos if m in main_modes and d in MAIN_DTYPES]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _version(module: str) -> str:
    """The installed version of the distribution that provides ``module``."""
    for dist in _distributions().get(module, [module]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def combos(modes: Sequence[str], dtypes: Sequence[str] = DTYPES) -> list[tuple[str, str]]:
    """Every (mode, dtype) pair, for :attr:`Backend.combos`."""
    return [(mode, dtype) for mode in modes for dtype in dtypes]


def reduce_per_example(
    losses: Any, valid: np.ndarray, reduction: str, cast: Any, dtype: str, xp: Any
) -> Any:
    """Reduce per-example losses (already 0 where ignored) as the core does.

    For runners of adapters whose functions return per-example losses. Sums run in the
    compute dtype (float32 for 16-bit losses), as Keras's reductions and torch's do: a
    float16 sum of losses in the thousands overflows.
    """
    compute = kernel.compute_dtype_name(dtype)
    losses = cast(losses, compute)
    return kernel.reduce_losses(losses, cast(valid, compute), reduction, xp)


def discover_backends(
    load: Callable[[str], bool] = lambda entry: True,
) -> tuple[list[Backend], list[str]]:
    """The backends the installed adapters announce, and why the others were skipped.

    ``load(entry name)`` False leaves an entry unloaded (its adapter, and framework,
    unimported) and unreported: ``--backends torch`` imports no TensorFlow.
    """
    found, skipped = [], []
    for entry in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        if not load(entry.name):
            continue
        if importlib.util.find_spec(entry.name) is None:
            skipped.append(f"{entry.value.split('.')[0]}: {entry.name} is not installed")
            continue
        try:
            found.extend(entry.load()())
        except Exception as err:  # a broken install is a disagreement, not a skip
            found.append(Backend(entry.name, entry.name, lambda: [], _raiser(err)))
    return found, skipped


def _raiser(err: Exception) -> Callable[[], Runner]:
    def runner() -> Runner:
        raise err

    return runner


#: Keras backends other than TensorFlow, each compared in a child process
KERAS_CHILD_BACKENDS = ("jax", "torch")

#: the names ``--backends`` and ``--modes`` accept (the adapters' names, for the message
#: that refuses a misspelt one before anything is imported)
KNOWN_BACKENDS = (
    "jax",
    "keras",
    "keras[jax]",
    "keras[torch]",
    "tensorflow",
    "torch",
    "torch[triton]",
)
KNOWN_MODES = (
    "eager",
    "jit",
    "function",
    "xla",
    "compile",
    "interpret",
    "cuda",
    "eager-cuda",
    "compile-cuda",
)


def run_keras_subprocess(
    keras_backend: str,
    seed: int,
    count: int,
    full: bool = True,
    modes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The JSON results of ``emphasis.check`` for Keras on ``keras_backend``."""
    return start_keras_subprocess(keras_backend, seed, count, full, modes)()


def start_keras_subprocess(
    keras_backend: str,
    seed: int,
    count: int,
    full: bool = True,
    modes: Sequence[str] | None = None,
) -> Callable[[], list[dict[str, Any]]]:
    """Start the child for Keras on ``keras_backend``; the function returned waits for its rows.

    The children run while the parent checks its own backends (two cores halve the wait).
    """
    env = dict(os.environ, KERAS_BACKEND=keras_backend)
    command = [sys.executable, "-m", "emphasis.check", "--json", "--backends", "keras"]
    command += ["--seed", str(seed), "--cases", str(count)]
    command += ["--full"] if full else []
    command += ["--modes", ",".join(modes)] if modes else []
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def wait() -> list[dict[str, Any]]:
        stdout, stderr = child.communicate()
        try:
            return list(json.loads(stdout))
        except json.JSONDecodeError:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            error = " | ".join(tail) or f"exit status {child.returncode}"
            row = {"backend": f"keras[{keras_backend}]", "mode": "-", "dtype": "-"}
            return [dict(row, error=error)]

    return wait


def load_triton_first() -> None:
    """Import Triton (when installed) while TensorFlow is not loaded yet.

    Triton's native library must load before TensorFlow's (both bundle LLVM): the other
    order segfaults. A backend that runs Triton kernels is discovered after Keras's, which
    loads TensorFlow, so the check imports Triton before it discovers any backend. On a
    machine without an NVIDIA GPU it first sets ``TRITON_INTERPRET=1`` (unless set), so
    that Triton kernels run in Triton's interpreter on CPU tensors: Triton reads the
    setting when it is imported.
    """
    if "tensorflow" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    if "triton" not in sys.modules and not os.path.exists("/dev/nvidia0"):
        os.environ.setdefault("TRITON_INTERPRET", "1")
    importlib.import_module("triton")


def run(
    backends: Sequence[str] | None = None,
    seed: int = 0,
    count: int = 24,
    progress: Callable[[str], None] | None = None,
    modes: Sequence[str] | None = None,
    edge: bool = True,
    full: bool = True,
) -> list[Result]:
    """Run every case on every available backend, mode and dtype.

    ``backends`` and ``modes`` (names as in the table) restrict the run; None runs all.
    ``full=False`` runs each backend's main modes at :data:`MAIN_DTYPES` only (what
    ``emphasis-check`` does without ``--full``); ``modes`` picks from the whole matrix.
    ``edge=False`` leaves out :func:`edge_cases` (each compiled case compiles anew).
    Before running, ``progress`` hears which backends were found and which were skipped
    and why (lines starting ``found`` and ``skipped``).
    """

    def wanted(name: str) -> bool:
        return backends is None or name in backends

    def say(message: str) -> None:
        if progress:
            progress(message)

    all_cases = cases(seed, count)
    results = []
    load_triton_first()
    keras_child = backends is not None and list(backends) == ["keras"]
    # Keras's other backends run in children: the parent loads only the entries of the
    # backends it runs itself ("torch[triton]" is the torch entry's).
    in_parent = None if backends is None else [b for b in backends if not b.startswith("keras[")]
    announced, skipped = discover_backends(
        lambda entry: in_parent is None or any(_entry_of(b) == entry for b in in_parent)
    )
    if keras_child:  # a child for one Keras backend
        in_process = [b for b in announced if b.name == "keras"]
    else:
        in_process = [b for b in announced if not b.child_only and wanted(b.name)]
        for reason in skipped:
            say(f"skipped {reason}")
    # The plan, reported before anything runs: (backend, its chosen combos).
    plan: list[tuple[Backend, list[tuple[str, str]] | None]] = []
    for backend in in_process:
        if importlib.util.find_spec(backend.module) is None:
            say(f"skipped {backend.name}: {backend.module} is not installed")
            continue
        try:
            available = backend.combos()
        except Exception:  # a broken install: _run_backend reports it
            plan.append((backend, None))
            continue
        chosen = select(available, backend.main_modes, full, modes)
        if not chosen and not keras_child:
            why = "only with --full" if not full and modes is None else "no mode selected"
            if available:
                say(f"skipped {backend.name}: {why}")
            else:
                say(f"skipped {backend.name}: no mode applies here")
            continue
        if not keras_child:
            say(f"found {backend.name} ({_version(backend.module)}): {_describe(chosen)}")
        plan.append((backend, chosen))
    has_keras = importlib.util.find_spec("keras") is not None and any(
        e.name == "keras" for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    )
    children = []
    if modes is not None:
        what = "chosen modes"
    else:
        what = "every mode and dtype" if full else f"main modes at {', '.join(MAIN_DTYPES)}"
    for name in KERAS_CHILD_BACKENDS:
        if keras_child or not wanted(f"keras[{name}]"):
            continue
        if not has_keras:
            say(f"skipped keras[{name}]: keras is not installed")
            continue
        if importlib.util.find_spec(name) is None:
            say(f"skipped keras[{name}]: {name} is not installed")
            continue
        say(
            f"found keras[{name}] ({_version('keras')}, {name} {_version(name)}): {what}, child process"
        )
        children.append((name, start_keras_subprocess(name, seed, count, full, modes)))
    for backend, pairs in plan:
        with_edges = all_cases + edge_cases(seed) if backend.edge_cases and edge else all_cases
        results.extend(_run_backend(backend, with_edges, progress, pairs))
    for name, wait in children:
        say(f"keras[{name}] (child process)")
        for row in wait():
            row.pop("verdict", None)
            results.append(Result(**row))
    return results


def _entry_of(backend: str) -> str:
    """The entry point that announces ``backend`` (Keras on TensorFlow is the keras entry's)."""
    return "keras" if backend == "tensorflow" else backend.split("[")[0]


def _describe(chosen: Sequence[tuple[str, str]]) -> str:
    """``eager, jit at float64, float32`` style: the modes and dtypes of a plan."""
    modes = list(dict.fromkeys(m for m, _ in chosen))
    dtypes = list(dict.fromkeys(d for _, d in chosen))
    return f"{', '.join(modes)} at {', '.join(dtypes)}"


def _run_backend(
    backend: Backend,
    all_cases: list[Case],
    progress: Callable[[str], None] | None,
    chosen: Sequence[tuple[str, str]] | None = None,
) -> list[Result]:
    """Run ``all_cases`` on ``backend`` for the ``chosen`` (mode, dtype) pairs (None: all)."""
    try:
        runner = backend.runner()
        name = backend.name
        if name == "keras":
            import keras

            name = f"keras[{keras.backend.backend()}]"
        combos = backend.combos() if chosen is None else list(chosen)
    except Exception as err:  # a broken install is a disagreement, not a skip
        return [Result(backend.name, "-", "-", error=f"{type(err).__name__}: {err}")]
    results = []
    for mode, dtype in combos:
        result = Result(name, mode, dtype)
        if progress:
            progress(f"{name} {mode} {dtype}")
        for case in all_cases:
            try:
                loss, grad = runner(case, dtype, mode)
                abs_err, rel_err, tol = compare(case, dtype, loss, grad)
            except Exception as err:
                result.error = f"{case.name}: {type(err).__name__}: {err}"
                break
            result.cases += 1
            if rel_err / tol >= result.max_ratio:
                result.worst = case.name
                result.max_ratio = rel_err / tol
            result.max_abs = max(result.max_abs, abs_err)
            result.max_rel = max(result.max_rel, rel_err)
        results.append(result)
    return results


def _table(results: Sequence[Result]) -> str:
    header = (
        "backend",
        "mode",
        "dtype",
        "cases",
        "max abs err",
        "max rel err",
        "max err/tolerance",
        "verdict",
    )
    rows = [
        (
            r.backend,
            r.mode,
            r.dtype,
            str(r.cases),
            f"{r.max_abs:.2e}",
            f"{r.max_rel:.2e}",
            f"{r.max_ratio:.3f}",
            "ok" if r.ok else "FAIL",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [
        f"{r.backend}/{r.mode}/{r.dtype}: {r.error or r.worst}" for r in results if not r.ok
    ]
    return "\n".join(lines + (["", "Disagreements:", *failures] if failures else []))


def _names(
    text: str, known: Sequence[str], what: str, also: Callable[[str], bool] = lambda _: False
) -> list[str]:
    """The comma-separated names of ``text``; each must be ``known`` (or pass ``also``)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known and not also(name)]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)} "
            f"(known: {', '.join(known)})"
        )
    return names


def _backend_names(text: str) -> list[str]:
    """``--backends``: this project's names, and any backend of an announced entry point
    (a third-party adapter's ``name`` or ``name[variant]``), refused by name otherwise."""
    entries = {entry.name for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _names(text, KNOWN_BACKENDS, "backend", also=lambda name: _entry_of(name) in entries)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="emphasis-check",
        description="Compare the loss values and logit gradients of every installed backend "
        "(PyTorch, TensorFlow, Keras on each backend, JAX) with the NumPy core. By default "
        "each backend runs its main modes (torch eager, and eager-cuda and the Triton kernels "
        "on a GPU; Keras eager on TensorFlow and torch, jit on JAX; JAX jit) at float64 and float32, "
        "in under a minute on 2 CPU cores; --full runs the whole matrix (every mode, the 16-bit dtypes, "
        "torch.compile, the Triton interpreter without a GPU), which takes minutes. The found "
        "and skipped backends, and why, are printed first (on stderr).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--full",
        action="store_true",
        help="run every mode and dtype of every backend (minutes), not only the main ones",
    )
    parser.add_argument(
        "--backends",
        type=_backend_names,
        help=f"comma-separated subset of {', '.join(KNOWN_BACKENDS)} (default: all installed)",
    )
    parser.add_argument(
        "--modes",
        type=lambda text: _names(text, KNOWN_MODES, "mode"),
        help="comma-separated modes, picked from the whole matrix at every dtype, e.g. "
        "interpret (Triton's interpreter on CPU), compile, cuda, compile-cuda "
        f"(known: {', '.join(KNOWN_MODES)}; default: the main modes, or all with --full)",
    )
    parser.add_argument(
        "--no-edge-cases",
        action="store_true",
        help="leave out the fused kernels' edge cases (see edge_cases)",
    )
    parser.add_argument(
        "--cases",
        type=_positive,
        help=f"number of cases (default {QUICK_CASES}, which cover every layout and logit "
        f"scale; {FULL_CASES} with --full)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

    def progress(message: str) -> None:
        if not args.json:
            report = message.startswith(("skipped", "found"))
            line = message if report else f"checking {message} ..."
            print(line, file=sys.stderr, flush=True)

    results = run(
        args.backends,
        args.seed,
        args.cases or (FULL_CASES if args.full else QUICK_CASES),
        progress,
        args.modes,
        edge=not args.no_edge_cases,
        full=args.full,
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(_table(results) if results else "no backend installed: only the NumPy core")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

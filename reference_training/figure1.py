"""Draw the paper's Figure 1: an example's weight w(p) against its relevance score p.

Left panel: the schemes whose transformation g is the identity -- CCE, MAE, GCE(q=0.5) and GR with
g = identity. Three of the GR curves are Eq. (7)'s special cases (beta=2, lam=0 is CCE; beta=4,
lam=1 is MAE; beta=2, lam=q is GCE(q)) and lie exactly on the curves they reproduce.

Right panel: GR with g = exp for the settings of the paper's Table 3 and Table 5, each divided by its
maximum so that the curves share a scale; the focus (argmax of w) is marked on every curve.

Then prints a table with each scheme's emphasis focus and its emphasis spread (the variance of the
weights) over relevance scores spread uniformly on [0, 1] (a grid of 1001 points): raw, and after
dividing the weights by their mean (which is what GR's batch normalisation does).

Usage:
    python reference_training/figure1.py --out figure1.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import emphasis

GRID_POINTS = 1001


@dataclass(frozen=True)
class Curve:
    label: str
    scheme: Any
    style: str = "-"


def identity_curves() -> list[Curve]:
    """Schemes with g = identity (left panel)."""
    return [
        Curve("CCE", emphasis.CCE()),
        Curve("MAE", emphasis.MAE()),
        Curve("GCE(q=0.5)", emphasis.GCE(q=0.5)),
        Curve("GR id (β=2, λ=0) = CCE", _gr(2.0, 0.0, "identity"), ":"),
        Curve("GR id (β=4, λ=1) = MAE", _gr(4.0, 1.0, "identity"), ":"),
        Curve("GR id (β=2, λ=0.5) = GCE(0.5)", _gr(2.0, 0.5, "identity"), ":"),
        Curve("GR id (β=8, λ=2)", _gr(8.0, 2.0, "identity"), "--"),
    ]


def exp_curves() -> list[Curve]:
    """GR with g = exp (right panel)."""
    return [
        Curve(f"GR exp (β={beta:g}, λ={lam:g})", _gr(beta, lam, "exp"))
        for beta, lam in [(8.0, 0.5), (12.0, 1.0), (16.0, 1.0), (12.0, 2.0)]
    ]


def _gr(beta: float, lam: float, transform: str) -> Any:
    return emphasis.GR(beta=beta, lam=lam, transform=transform)


def spreads(scheme: Any, p: np.ndarray) -> tuple[float, float]:
    """Variance of w(p) over the grid ``p``: raw, and of w / mean(w)."""
    w = np.asarray(scheme.weight(p), dtype=np.float64)
    mean = float(np.mean(w))
    raw = float(np.var(w))
    normalised = float(np.var(w / mean)) if mean > 0 else float("nan")
    return raw, normalised


def table(curves: Sequence[Curve], p: np.ndarray) -> str:
    """Plain-text, aligned table: scheme | focus | spread (raw) | spread (normalised)."""
    header = ("scheme", "focus", "spread, uniform p (raw)", "spread, normalised (w/mean w)")
    rows = []
    for c in curves:
        raw, norm = spreads(c.scheme, p)
        rows.append((c.label, f"{float(c.scheme.focus):.4f}", f"{raw:.6g}", f"{norm:.6g}"))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


def draw(out: str, p: np.ndarray, dpi: int = 120) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_id, ax_exp) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)

    for c in identity_curves():
        w = np.asarray(c.scheme.weight(p), dtype=np.float64)
        kwargs: dict[str, Any] = {"linestyle": c.style, "label": c.label}
        if c.style == ":":
            kwargs.update(linewidth=2.5)
        ax_id.plot(p, w, **kwargs)
    ax_id.set_title("g = identity: CCE, MAE, GCE and GR (Eq. 7)")
    ax_id.set_xlabel("relevance score p (softmax probability of the labelled class)")
    ax_id.set_ylabel("weight w(p)")
    ax_id.set_xlim(0.0, 1.0)
    ax_id.set_ylim(bottom=0.0)
    ax_id.grid(alpha=0.3)
    ax_id.legend(fontsize=8)

    for c in exp_curves():
        w = np.asarray(c.scheme.weight(p), dtype=np.float64)
        peak = float(np.max(w))
        focus = float(c.scheme.focus)
        (line,) = ax_exp.plot(p, w / peak, label=f"{c.label}, max w = {peak:.3g}")
        w_focus = float(np.asarray(c.scheme.weight(np.array([focus])), dtype=np.float64)[0])
        ax_exp.plot([focus], [w_focus / peak], "o", color=line.get_color())
    ax_exp.set_title("g = exp: GR, each divided by its maximum (dot = focus)")
    ax_exp.set_xlabel("relevance score p (softmax probability of the labelled class)")
    ax_exp.set_ylabel("w(p) / max w")
    ax_exp.set_xlim(0.0, 1.0)
    ax_exp.set_ylim(0.0, 1.05)
    ax_exp.grid(alpha=0.3)
    ax_exp.legend(fontsize=8, loc="lower center")

    fig.suptitle("Figure 1: an example's weight against its relevance score")
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Draw the paper's Figure 1 (weight w(p) against relevance score p for CCE, MAE, "
            "GCE and GR) and print each scheme's emphasis focus and spread."
        )
    )
    parser.add_argument(
        "--out", default="figure1.png", help="PNG file to write (default: figure1.png)"
    )
    parser.add_argument("--dpi", type=int, default=120, help="resolution of the PNG (default: 120)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    p = np.linspace(0.0, 1.0, GRID_POINTS)
    draw(args.out, p, dpi=args.dpi)
    print(f"wrote {args.out}")
    print()
    print(
        f"emphasis focus (argmax w) and spread (variance of w over {GRID_POINTS} uniform p in [0, 1])"
    )
    print(table([*identity_curves(), *exp_curves()], p))
    return 0


if __name__ == "__main__":
    sys.exit(main())

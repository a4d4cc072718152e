"""Import time of each adapter beside its framework's own, in fresh interpreters.

    python benchmarks/bench_import.py [--repeats 5]

Each measurement is a new ``python -c "import X"`` process (wall time, interpreter
start-up included), the pairs interleaved (framework, adapter, framework, ...) so that
a noisy machine slows both alike; the table gives the medians and the adapter's
overhead over its framework. The last column is steadier on a busy machine: the
time of the adapter's own modules (``python -X importtime``: the adapter's cumulative
time less its framework's). A framework that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

#: (what the user imports, the framework it brings in)
PAIRS = (
    ("emphasis", "numpy"),
    ("emphasis_torch", "torch"),
    ("emphasis_tf", "keras"),
    ("emphasis_jax", "jax"),
)


def import_seconds(module: str) -> float:
    """Wall time of ``python -c "import module"`` in a fresh interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def own_milliseconds(module: str, framework: str) -> float:
    """The import time of ``module`` less that of ``framework`` (``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
    )
    cumulative = {}
    for line in done.stderr.splitlines():  # "import time: self | cumulative | name"
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative.setdefault(parts[2].strip(), int(parts[1]))
    return (cumulative[module] - cumulative.get(framework, 0)) / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each import (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print("| import | median s | framework alone s | overhead s | overhead % | own modules ms |")
    print("|---|---|---|---|---|---|")
    for adapter, framework in PAIRS:
        if importlib.util.find_spec(framework) is None:
            print(f"| {adapter} | skipped: {framework} is not installed | | | | |")
            continue
        alone, adapted, own = [], [], []
        for _ in range(args.repeats):
            alone.append(import_seconds(framework))
            adapted.append(import_seconds(adapter))
            own.append(own_milliseconds(adapter, framework))
        base, mine = statistics.median(alone), statistics.median(adapted)
        extra = mine - base
        print(
            f"| {adapter} | {mine:.2f} | {base:.2f} | {extra:+.2f} | {100 * extra / base:+.0f}% "
            f"| {statistics.median(own):.0f} |"
        )


if __name__ == "__main__":
    main()

"""GR's global-batch normalisation under pmap and shard_map, on 4 host CPU devices.

Runs tests/_jax_data_parallel.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (the flag only acts before JAX starts).
It checks that the gradient 4 devices compute for B/4 examples each, normalising over
``axis_name``, equals the single-device gradient of the full batch (to 2e-5), for pmap,
shard_map (gradient inside and outside the map), ``where`` with a traced beta, and the
parameters of a linear model; and that per-device normalisation gives a different one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.jax


def test_global_normalisation_over_four_devices_matches_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_jax_data_parallel.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK"), result.stdout
    for check in ("pmap, global normaliser", "shard_map, grad inside", "shard_map, grad outside"):
        assert check in result.stdout, result.stdout

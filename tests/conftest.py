"""Shared test configuration.

Hypothesis runs a small number of examples by default so that CI stays fast;
set EMPHASIS_HYPOTHESIS_EXAMPLES (e.g. 1000) for a longer search.
"""

import importlib.util
import os

from hypothesis import HealthCheck, settings

if importlib.util.find_spec("triton") is not None:
    # Without a GPU, Triton's kernels run in its interpreter (tests/test_triton.py); the
    # setting is read when Triton is imported, so it is made here.
    if not os.path.exists("/dev/nvidia0"):
        os.environ.setdefault("TRITON_INTERPRET", "1")
    # Triton's native library must load before TensorFlow's: the other order segfaults
    # (both bundle LLVM). torch.compile imports Triton lazily, after the TF tests ran.
    import triton  # noqa: F401

settings.register_profile(
    "emphasis",
    max_examples=int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("emphasis")

"""Shared test configuration.

Hypothesis runs a small number of examples by default so that CI stays fast;
set EMPHASIS_HYPOTHESIS_EXAMPLES (e.g. 1000) for a longer search.
"""

import os

from hypothesis import HealthCheck, settings

from emphasis.check import load_triton_first

# Triton before TensorFlow (the other order segfaults), and without a GPU in its interpreter
# (tests/test_triton.py): torch.compile would import it lazily, after the TF tests ran.
load_triton_first()

settings.register_profile(
    "emphasis",
    max_examples=int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("emphasis")

"""Shared test configuration.

Hypothesis runs a small number of examples by default so that CI stays fast;
set EMPHASIS_HYPOTHESIS_EXAMPLES (e.g. 1000) for a longer search.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "emphasis",
    max_examples=int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("emphasis")

"""The recipe pages (docs/recipes/) run as shown, and compute what their text says.

Every ```python block of a page runs in order in one namespace (offline, tiny randomly
initialised models); a block that starts with ``# <name>.py`` is a script the reader saves
and runs, so it runs in a subprocess instead. The numbers a page quotes in bold on its
"Measured" lines are compared with what its code computes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _readme import BLOCK, ROOT, code_of

pytest.importorskip("torch")

pytestmark = pytest.mark.torch

RECIPES = ROOT / "docs" / "recipes"
SCRIPT = re.compile(r"\A# (\w+\.py)\n")
MEASURED = re.compile(r"^Measured.*?(?=\n\s*\n|\Z)", re.DOTALL | re.MULTILINE)
NUMBER = re.compile(r"\*\*(\d\.\d+e[-+]\d+)\*\*")
#: A quoted number below this is rounding: the code must stay below it, not match it.
ROUNDING = 1e-5


def quoted_numbers(text: str) -> list[float]:
    """The bold numbers of the page's "Measured" paragraphs, in order."""
    return [float(n) for paragraph in MEASURED.findall(text) for n in NUMBER.findall(paragraph)]


def run_page(name: str, tmp_path: Path) -> tuple[dict, str, list[float]]:
    """Runs the page's blocks; returns the namespace, the scripts' output and its numbers.

    The scripts are independent of the other blocks: they start first and run beside them.
    """
    text = (RECIPES / name).read_text()
    namespace: dict = {"__name__": f"recipe_{Path(name).stem}"}
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    blocks, scripts = [code_of(m) for m in BLOCK.finditer(text)], []
    for block in blocks:
        script = SCRIPT.match(block)
        if script:
            file = tmp_path / script.group(1)
            file.write_text(block)
            log = file.with_suffix(".log").open("w+")  # stdout and stderr (no pipe to fill)
            # Its own process group: the DDP workers it launches end with it.
            process = subprocess.Popen(
                [sys.executable, file.name],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            scripts.append((process, log))
    try:
        for index, block in enumerate(blocks):
            if not SCRIPT.match(block):
                exec(compile(block, f"{name}, block {index}", "exec"), namespace)
        for process, _ in scripts:
            process.wait(timeout=300)
    finally:
        for process, log in scripts:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    printed = ""
    for process, log in scripts:
        output = Path(log.name).read_text()
        assert process.returncode == 0, output[-8000:]
        printed += output
    return namespace, printed, quoted_numbers(text)


def check_quoted(quoted: list[float], measured: list[float]) -> None:
    """Each quoted number matches what the code measured (rounding stays rounding)."""
    assert len(quoted) == len(measured), (quoted, measured)
    for said, got in zip(quoted, measured, strict=True):
        if said < ROUNDING:
            assert got < ROUNDING, (said, got)
        else:
            assert got == pytest.approx(said, rel=0.1), (said, got)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # anything a trainer writes by default stays out of the repo
    return tmp_path


def test_huggingface_recipe(offline):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    ns, _, quoted = run_page("huggingface.md", offline)
    assert ns["calls"], "the Trainer never called compute_loss_func"
    losses = ns["losses"]
    assert losses[-1] < losses[0] - 0.2, losses
    # Accumulation changes GR's gradient, not CCE's; the two-pass Trainer is exact.
    assert ns["gr_difference"] > 1e-2 and ns["plain_difference"] > 1e-2
    assert ns["cce_difference"] < ROUNDING
    assert ns["two_pass_difference"] < ROUNDING
    assert ns["subclass_difference"] < ROUNDING  # the compute_loss override: the same loss
    measured = [
        "gr_difference",
        "cce_difference",
        "subclass_difference",
        "plain_difference",
        "two_pass_difference",
    ]
    check_quoted(quoted, [ns[k] for k in measured])


def test_lightning_recipe(offline):
    pytest.importorskip("lightning")
    ns, printed, quoted = run_page("lightning.md", offline)
    losses = ns["losses"]
    assert losses[-1] < losses[0] - 0.05, losses
    ddp = [float(n) for n in re.findall(r"relative difference (\S+)", printed)]
    assert len(ddp) == 2, printed
    # Two gloo processes with global_normalize=True: the one-process gradient of the batch.
    assert ddp[0] < ROUNDING
    assert ddp[1] > 1e-2
    assert ns["gr_difference"] > 1e-3
    assert ns["cce_difference"] < ROUNDING
    assert ns["two_pass_difference"] < ROUNDING
    measured = [ns[k] for k in ("gr_difference", "cce_difference", "two_pass_difference")]
    check_quoted(quoted, ddp + measured)

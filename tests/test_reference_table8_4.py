"""Tables 8 and 4 of the paper: GR against L2 and dropout, and MentorNet's CIFAR-10 setting.

What is checked: MentorNet's CIFAR "inception" student (TF-slim CifarNet, as their
code/inception_model.py builds it) has the parameter count of their layer definitions, their
layer order, LRN and initialisation; the ResNet's dropout sits before the classifier; the
MentorNet protocol (--schedule mentornet) resolves to their optimiser, schedule and input
pipeline; bad values are refused naming the argument; every command that --plan 8 and --plan 4
print trains the cell it names (tiny CIFAR files, tiny iteration counts) and the tables put
those runs beside the paper's numbers; runs with dropout / the MentorNet protocol resume
bit-identically; the tables keep runs with other regularisation out of Tables 2, 3 and 5.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path

import numpy as np
import pytest

from reference_training import cifar, tables

torch = pytest.importorskip("torch")
pytest.importorskip("emphasis_torch")

from reference_training import train_cifar  # noqa: E402  (needs torch)
from reference_training.mentornet_inception import MentorNetInception  # noqa: E402
from reference_training.resnet_cifar import resnet_cifar  # noqa: E402

# ---------------------------------------------------------------------------
# MentorNet's network
# ---------------------------------------------------------------------------


def their_parameter_count(num_classes: int) -> int:
    """Parameters of ``cifarnet`` in google/mentornet code/inception_model.py, layer by layer:
    slim.conv2d and slim.fully_connected have a weight and a bias each (no batch norm: the
    normalizer_fn is commented out, lines 57-69)."""
    side = 32 // 2 // 2  # two 2x2 max pools with stride 2 (lines 73, 79), SAME convolutions
    layers = [
        (5 * 5 * 3, 64),  # conv1, line 71: 5x5, 64 filters on RGB
        (5 * 5 * 64, 64),  # conv2, line 76
        (side * side * 64, 384),  # fc3, line 83, on the flattened pool2 (line 81)
        (384, 192),  # fc4, line 87
        (192, num_classes),  # logits, line 89
    ]
    return sum(fan_in * out + out for fan_in, out in layers)


def test_mentornet_network_has_their_parameter_count_layers_and_initialisation():
    assert their_parameter_count(10) == 1_756_426 and their_parameter_count(100) == 1_773_796
    for classes in (10, 100):
        model = MentorNetInception(classes)
        assert sum(p.numel() for p in model.parameters()) == their_parameter_count(classes)
        assert not list(model.buffers())
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, classes)
    torch.manual_seed(0)
    model = MentorNetInception(10)
    calls: list[str] = []
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    model(torch.zeros(1, 3, 32, 32))
    assert calls == ["conv1", "pool1", "norm1", "conv2", "norm2", "pool2", "fc3", "dropout",
                     "fc4", "logits"]  # fmt: skip
    assert model.dropout.p == 0.2  # keep probability 0.8 (cifar_train_baseline.py line 243)
    # truncated normal (two standard deviations) of the stated stds; biases 0 / 0.1 / 0
    truncated = 0.8796  # std of a standard normal truncated to [-2, 2]
    for layer, std, bias in ((model.conv2, 0.05, 0.0), (model.fc3, 0.04, 0.1),
                             (model.logits, 1 / 192, 0.0)):  # fmt: skip
        w = layer.weight.detach()
        assert w.abs().max() <= 2 * std + 1e-7
        assert float(w.std()) == pytest.approx(std * truncated, rel=0.05)
        assert torch.all(layer.bias == bias)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        MentorNetInception(10, dropout=1.0)


def test_mentornet_lrn_is_tensorflows():
    """tf.nn.lrn(x, depth_radius=4, bias=1, alpha=0.001/9, beta=0.75) written out in numpy."""
    x = np.random.default_rng(0).normal(scale=30.0, size=(2, 64, 3, 3)).astype(np.float64)
    sq = np.pad(x**2, ((0, 0), (4, 4), (0, 0), (0, 0)))
    window = sum(sq[:, k : k + 64] for k in range(9))  # channels d-4 .. d+4
    expected = x / (1.0 + 0.001 / 9 * window) ** 0.75
    got = MentorNetInception(10).norm1(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_resnet_dropout_sits_before_the_classifier():
    plain, dropped = resnet_cifar(8, 10), resnet_cifar(8, 10, dropout=0.2)
    assert isinstance(plain.dropout, torch.nn.Identity)  # rate 0 draws no random numbers
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    seen: list[torch.Tensor] = []
    dropped.fc.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    dropped.blocks.register_forward_hook(lambda m, i, o: seen.append(o))
    dropped.train()
    dropped(torch.randn(64, 3, 32, 32))
    blocks_out, fc_in = seen[0], seen[1]
    pooled = blocks_out.mean((2, 3))
    zeroed = fc_in == 0
    assert 0.1 < float(zeroed.float().mean()) < 0.3  # the rate 0.2
    kept = ~zeroed
    torch.testing.assert_close(fc_in[kept], pooled[kept] / 0.8)  # inverted dropout on pooling
    dropped.eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(dropped(x), dropped(x))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        resnet_cifar(8, 10, dropout=-0.1)


# ---------------------------------------------------------------------------
# the MentorNet protocol and the new options
# ---------------------------------------------------------------------------


def _config(*argv: str) -> dict:
    args = train_cifar.build_parser().parse_args(["--data-dir", "/d", *argv])
    return train_cifar.resolve_config(args, args.seed)


def test_mentornet_protocol_resolves_to_their_settings():
    c = _config("--schedule", "mentornet", "--noise-rate", "0.4", "--loss", "gr", "--seed", "3")
    assert (c["arch"], c["depth"], c["dropout"], c["momentum"], c["weight_decay"]) == (
        "mentornet-inception", None, 0.2, 0.0, 0.0)  # fmt: skip
    assert (c["iterations"], c["milestones"], c["lr"], c["batch_size"]) == (120000, [78125], 0.1,
                                                                           128)  # fmt: skip
    assert (c["pad"], c["standardize"]) == (8, "image")
    assert c["run_name"] == "cifar10_mentornet-inception_mentornet_r0.4_gr_b8_l0.5_seed3"
    # the defaults of the other schedules are unchanged, and so are their run names
    p = _config("--dataset", "cifar100", "--noise-rate", "0.4", "--loss", "gr", "--seed", "1")
    assert (p["arch"], p["depth"], p["dropout"], p["momentum"], p["pad"], p["standardize"]) == (
        "resnet", 44, 0.0, 0.9, 4, "channel")  # fmt: skip
    assert p["run_name"] == "cifar100_resnet44_paper_r0.4_gr_b8_l0.5_seed1"
    t8 = _config("--dataset", "cifar100", "--weight-decay", "0", "--dropout", "0.2")
    assert t8["run_name"] == "cifar100_resnet44_paper_r0_cce_wd0_drop0.2_seed0"
    # the Sec. 4.1 reading of Table 4: their network with the paper's optimiser
    s = _config("--arch", "mentornet-inception", "--schedule", "paper")
    assert (s["dropout"], s["momentum"], s["weight_decay"], s["pad"]) == (0.2, 0.9, 1e-4, 4)
    assert s["run_name"] == "cifar10_mentornet-inception_paper_r0_cce_seed0"


def test_per_image_standardisation_and_eight_pixel_crops():
    images = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    )
    images[2] = 7  # a constant image: std is floored at 1/sqrt(3072)
    out = train_cifar.PerImageStandardizer()(images)
    for i in range(3):
        x = images[i].numpy().astype(np.float64)
        expected = (x - x.mean()) / max(x.std(), 1 / math.sqrt(x.size))
        np.testing.assert_allclose(out[i].numpy(), expected, rtol=1e-5, atol=1e-5)
    offsets = np.concatenate([train_cifar.augmentation(0, i, 64, pad=8)[0] for i in range(20)])
    assert offsets.min() == 0 and offsets.max() == 16
    rows, cols = torch.tensor([0, 16]), torch.tensor([16, 3])
    crops = train_cifar.crop_and_flip(images[:2], rows, cols, torch.tensor([False, True]), 8)
    padded = torch.nn.functional.pad(images[:2], (8, 8, 8, 8))
    assert torch.equal(crops[0], padded[0, :, 0:32, 16:48])
    assert torch.equal(crops[1], padded[1, :, 16:48, 3:35].flip(-1))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dropout", "1"], r"--dropout must be in \[0, 1\), got 1.0"),
        (["--dropout", "-0.1"], r"--dropout must be in \[0, 1\), got -0.1"),
        (["--dropout", "nan"], r"--dropout must be in \[0, 1\), got nan"),
        (["--weight-decay=-1e-4"], "--weight-decay must be >= 0"),
        (["--momentum", "-0.5"], "--momentum must be >= 0"),
        (["--schedule", "mentornet", "--depth", "44"], "--depth is for --arch resnet"),
    ],
)
def test_bad_values_are_refused_naming_the_argument(argv, message):
    with pytest.raises(ValueError, match=message):
        _config(*argv)


@pytest.mark.parametrize(
    ("argv", "name"), [(["--schedule", "cosine"], "--schedule"), (["--arch", "vgg"], "--arch")]
)
def test_unknown_protocol_or_network_is_refused_naming_the_argument(argv, name, capsys):
    with pytest.raises(SystemExit):
        _config(*argv)
    assert f"argument {name}: invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tables.main(["--plan", "4", "--schedule", "cosine"])
    assert "argument --schedule: invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# the plans, run end to end on tiny files
# ---------------------------------------------------------------------------

TINY = ["--batch-size", "4", "--log-every", "1", "--eval-every", "2", "--checkpoint-every", "2",
        "--eval-batch-size", "64", "--no-progress", "--repeats", "1"]  # fmt: skip


def _run_plan(commands: list[str], data: Path, out: Path, *extra: str) -> list[dict]:
    """Run each printed command (after ``python -m reference_training.train_cifar``) with the
    tiny data and iteration counts appended; return the configs of the runs, in order."""
    configs = []
    for command in commands:
        argv = shlex.split(command)[3:]
        argv[argv.index("--data-dir") + 1] = str(data)
        argv[argv.index("--out-dir") + 1] = str(out)
        before = set(out.iterdir()) if out.exists() else set()
        assert train_cifar.main([*argv, *TINY, *extra]) == 0
        (new,) = set(out.iterdir()) - before  # each command trains its own run
        configs.append(json.loads((new / "config.json").read_text()))
        assert (new / "final.json").exists()
    return configs


def _row(text: str, start: str, heading: str) -> list[str]:
    section = text[text.index(heading) :]
    line = next(line for line in section.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_plan8_commands_train_every_cell_and_fill_table8(tmp_path, monkeypatch, capsys):
    assert tables.main(["--plan", "8", "--data-dir", "D", "--out-dir", "O"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 8 and all("--schedule paper" in c for c in commands)
    data = tmp_path / "data"
    cifar.write_synthetic(data, "cifar100", train_size=12, test_size=8, seed=2)
    # ResNet-8 instead of 44 (the last --depth wins), 2 iterations
    configs = _run_plan(commands, data, tmp_path / "runs", "--depth", "8", "--iterations", "2")
    for config, (label, spec, decay, dropout, _) in zip(configs, tables.TABLE8, strict=True):
        assert spec.matches(config), label
        assert (config["weight_decay"], config["dropout"], config["arch"]) == (decay, dropout,
                                                                               "resnet")  # fmt: skip
        assert (config["dataset"], config["noise_rate"], config["schedule"]) == (
            "cifar100", 0.4, "paper")  # fmt: skip
    monkeypatch.setattr(tables, "TABLE8_DEPTH", 8)  # let the tiny runs fill the table
    text = tables.render(*tables.read_runs(tmp_path / "runs"))
    cells = _row(text, "| 40% |", "### Table 8")
    assert cells[2::2] == ["44.7 ± 0.1", "51.5 ± 0.4", "46.7 ± 0.5", "52.8 ± 0.4", "55.7 ± 0.3",
                           "59.3 ± 0.2", "54.3 ± 0.4", "58.3 ± 0.3"]  # fmt: skip
    assert all(c.endswith("(1)") for c in cells[1::2])
    # only L2 and GR+L2 (the paper schedule's own weight decay, no dropout) are runs of the
    # kind Tables 2, 3 and 5 take (GR+L2 is Table 5's GR cell at r = 40%)
    standard = [tables.is_standard(c) for c in configs]
    assert standard == [False, True, False, False, False, True, False, False]


def test_plan4_commands_train_every_cell_and_fill_table4(tmp_path, capsys):
    assert tables.main(["--plan", "4", "--data-dir", "D", "--repeats", "3"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 12
    assert all("--arch mentornet-inception --schedule mentornet" in c for c in commands)
    assert all("--repeats 3" in c and "--depth" not in c for c in commands)
    data = tmp_path / "data"
    cifar.write_synthetic(data, "cifar10", train_size=12, test_size=8, seed=3)
    configs = _run_plan(commands, data, tmp_path / "runs", "--iterations", "1")
    cells = [(rate, spec) for rate in tables.TABLE4 for _, spec, _ in tables.TABLE4_OURS]
    for config, (rate, spec) in zip(configs, cells, strict=True):
        assert spec.matches(config) and config["noise_rate"] == rate
        assert (config["arch"], config["dropout"], config["momentum"], config["weight_decay"],
                config["pad"], config["standardize"]) == ("mentornet-inception", 0.2, 0.0, 0.0,
                                                          8, "image")  # fmt: skip
    text = tables.render(*tables.read_runs(tmp_path / "runs"))
    assert "### Table 4" in text and "### Table 5" not in text and "### Table 8" not in text
    row = _row(text, "| 80% |", "### Table 4")
    # Noise | CCE ours | FullModel | Forgetting ... DD | GCE ours | GCE | GR ours | GR
    assert row[0] == "80%" and len(row) == 13
    assert row[2:9] == ["0.42", "0.44", "0.33", "0.40", "0.39", "0.44", "0.46"]
    assert row[10] == "0.50" and row[12] == "0.57"
    final = {(c["noise_rate"], c["loss"]): c["run_name"] for c in configs}
    for column, loss in ((1, "cce"), (9, "gce"), (11, "gr")):
        result = json.loads((tmp_path / "runs" / final[0.8, loss] / "final.json").read_text())
        assert row[column] == f"{result['test_acc_final'] / 100:.2f} (1)"
    zero = _row(text, "| 0% |", "### Table 4")
    assert zero[3:9] == ["-"] * 6 and zero[2] == "0.81"
    # the same plan with the paper's optimiser (Sec. 4.1): their network, schedule paper
    assert tables.main(["--plan", "4", "--schedule", "paper"]) == 0
    assert "--arch mentornet-inception --schedule paper" in capsys.readouterr().out


def _fake_run(root: Path, name: str, final: float, **config) -> None:
    base = dict(schedule="paper", dataset="cifar100", depth=44, noise_rate=0.4, loss="gr",
                beta=8.0, lam=0.5, q=None, eps=1e-6, transform="exp", normalize=True, seed=0)  # fmt: skip
    base.update(config)
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(base))
    result = {"test_acc_final": final, "test_acc_best": final, "train_acc_noisy": 50.0,
              "train_acc_intact": 70.0}  # fmt: skip
    (root / name / "final.json").write_text(json.dumps(result))


def test_tables_group_runs_by_weight_decay_dropout_and_network(tmp_path):
    # a run written before --dropout existed: schedule paper's weight decay, no dropout
    _fake_run(tmp_path, "legacy", 59.0, seed=1)
    _fake_run(tmp_path, "gr_l2", 60.0, seed=2, weight_decay=1e-4, dropout=0.0, arch="resnet",
              momentum=0.9)  # fmt: skip
    for seed, acc in enumerate([54.0, 57.0]):
        _fake_run(tmp_path, f"gr_drop{seed}", acc, seed=seed, weight_decay=0.0, dropout=0.2,
                  arch="resnet", momentum=0.9)  # fmt: skip
    _fake_run(tmp_path, "cce_l2_drop", 50.0, loss="cce", beta=None, lam=None,
              weight_decay=1e-4, dropout=0.2, arch="resnet", momentum=0.9)  # fmt: skip
    _fake_run(tmp_path, "other_momentum", 1.0, weight_decay=0.0, dropout=0.2, arch="resnet",
              momentum=0.5)  # fmt: skip
    text = tables.render(*tables.read_runs(tmp_path))
    t8 = _row(text, "| 40% |", "### Table 8")
    drop = f"{statistics.fmean([54.0, 57.0]):.1f} ± {statistics.stdev([54.0, 57.0]):.1f} (2)"
    assert t8[1:9] == ["—", "44.7 ± 0.1", "—", "51.5 ± 0.4", "—", "46.7 ± 0.5", "50.0 (1)",
                       "52.8 ± 0.4"]  # fmt: skip
    assert t8[9:] == ["—", "55.7 ± 0.3", "59.5 ± 0.7 (2)", "59.3 ± 0.2", drop, "54.3 ± 0.4",
                      "—", "58.3 ± 0.3"]  # fmt: skip
    # Table 5 takes only the runs with the schedule's regularisation (legacy and gr_l2)
    assert _row(text, "| 40% |", "### Table 5")[5] == "59.5 ± 0.7 (2)"
    # every group is listed with its network, weight decay, dropout and momentum
    assert "| 1 | 1.0 (1) | 1.0 (1) | 50.0 (1) | 70.0 (1) | 0 | resnet | 0 | 0.2 | 0.5 |" in text
    assert "| 2 | 59.5 ± 0.7 (2) |" in text and "| 1,2 | resnet | 0.0001 | 0 | 0.9 |" in text


# ---------------------------------------------------------------------------
# resuming runs with the new settings
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data10(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    cifar.write_synthetic(root, "cifar10", train_size=20, test_size=8, seed=0)
    return root


def _train(data: Path, out: Path, *extra: str) -> int:
    return train_cifar.main(["--data-dir", str(data), "--out-dir", str(out), *TINY, *extra])


def _same_run(a: Path, b: Path) -> None:
    sa = train_cifar.load_checkpoint(a / "checkpoint.pt", torch.device("cpu"))
    sb = train_cifar.load_checkpoint(b / "checkpoint.pt", torch.device("cpu"))
    assert sa["iteration"] == sb["iteration"] and sa["config"] == sb["config"]
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    assert json.loads((a / "final.json").read_text()) == json.loads((b / "final.json").read_text())


@pytest.mark.parametrize(
    "settings",
    [
        ["--schedule", "mentornet", "--loss", "gr"],
        ["--depth", "8", "--dropout", "0.2", "--weight-decay", "0", "--loss", "cce"],
    ],
    ids=["mentornet", "resnet-dropout"],
)
def test_killed_and_resumed_run_with_dropout_is_bit_identical(data10, tmp_path, settings):
    common = ["--iterations", "7", "--checkpoint-every", "3", "--noise-rate", "0.4",
              "--seed", "4", *settings]  # fmt: skip
    _train(data10, tmp_path / "straight", *common)
    with pytest.raises(train_cifar.SimulatedKill):
        _train(data10, tmp_path / "killed", *common, "--halt-after", "5")
    (killed,) = (tmp_path / "killed").iterdir()
    assert train_cifar.load_checkpoint(killed / "checkpoint.pt", "cpu")["iteration"] == 3
    _train(data10, tmp_path / "killed", *common, "--resume")
    _same_run(tmp_path / "straight" / killed.name, killed)
    config = json.loads((killed / "config.json").read_text())
    for key in ("arch", "dropout", "weight_decay", "momentum", "schedule", "pad", "standardize"):
        assert config[key] == train_cifar.load_checkpoint(killed / "checkpoint.pt", "cpu")[
            "config"][key]  # fmt: skip


def test_resume_checks_dropout_and_accepts_checkpoints_from_before_it(data10, tmp_path):
    common = ["--depth", "8", "--iterations", "4", "--run-name", "x"]
    with pytest.raises(train_cifar.SimulatedKill):
        _train(data10, tmp_path, *common, "--dropout", "0.2", "--halt-after", "3")
    with pytest.raises(ValueError, match=r"settings differ from the checkpoint \(dropout: 0.2 "
                                         r"-> 0.3\)"):  # fmt: skip
        _train(data10, tmp_path, *common, "--dropout", "0.3", "--resume")
    # A checkpoint written before arch/dropout/pad/standardize existed: it was a ResNet without
    # dropout, 4-pixel padding, per-channel normalisation, and resumes as one.
    with pytest.raises(train_cifar.SimulatedKill):
        _train(data10, tmp_path, *common, "--overwrite", "--halt-after", "3")
    path = tmp_path / "x" / "checkpoint.pt"
    state = train_cifar.load_checkpoint(path, "cpu")
    for key in ("arch", "dropout", "pad", "standardize"):
        del state["config"][key]
    torch.save(state, path)
    assert _train(data10, tmp_path, *common, "--resume") == 0
    assert json.loads((tmp_path / "x" / "final.json").read_text())["iterations"] == 4
    with pytest.raises(train_cifar.SimulatedKill):
        _train(data10, tmp_path, *common, "--overwrite", "--halt-after", "3")
    state = train_cifar.load_checkpoint(path, "cpu")
    del state["config"]["dropout"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"\(dropout: 0.0 -> 0.1\)"):
        _train(data10, tmp_path, *common, "--dropout", "0.1", "--resume")

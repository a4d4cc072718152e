"""The Clothing1M pipeline end to end on a tiny tree in the distribution's layout (CPU, seconds).

Checked: the key/label lists are read as the public loaders read them (key = image path relative
to the root, labels 0..13); malformed files are refused naming the file and line; the ResNet-50
has torchvision's parameter count and key names and loads a torchvision-format checkpoint file
(except fc); a run writes config/log/checkpoint/final; a killed and resumed run is bit-identical
to an uninterrupted one; Table 6 and --plan 6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from reference_training import clothing1m, tables  # noqa: E402
from reference_training.resnet50 import resnet50  # noqa: E402
from reference_training.train_cifar import SimulatedKill  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: threads only contend on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_tree(root: Path, train: int = 24, val: int = 6, test: int = 8) -> dict[str, list]:
    rng = np.random.default_rng(0)
    keys: dict[str, list] = {"train": [], "val": [], "test": []}
    noisy, clean = [], []
    for split, n in (("train", train), ("val", val), ("test", test)):
        for i in range(n):
            key = f"images/{i % 3}/{i % 7:02d}/{split}{i}.jpg"
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (10 + i % 4, 12, 3), dtype=np.uint8)).save(path)
            label = (i * 5) % clothing1m.NUM_CLASSES
            (noisy if split == "train" else clean).append(f"{key} {label}")
            keys[split].append((key, label))
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    for split, name in (("train", "noisy_train"), ("val", "clean_val"), ("test", "clean_test")):
        (root / f"{name}_key_list.txt").write_text("\n".join(k for k, _ in keys[split]) + "\n")
    return keys


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "clothing1m"
    return root, write_tree(root)


def test_reader_reads_the_distribution_layout(tree):
    root, keys = tree
    data = clothing1m.load_clothing1m(root)
    for split in ("train", "val", "test"):
        assert [str(p.relative_to(root)) for p in data[split].paths] == [k for k, _ in keys[split]]
        assert data[split].labels.tolist() == [lab for _, lab in keys[split]]
    image = clothing1m.decode(data["train"].paths[0], "x", 16)
    assert image.shape == (3, 16, 16) and image.dtype == np.uint8


def test_reader_finds_lists_in_annotations(tree):
    root, keys = tree
    (root / "annotations").mkdir()
    for name in clothing1m.LIST_FILES.values():
        (root / name).rename(root / "annotations" / name)
    assert len(clothing1m.load_clothing1m(root)["test"]) == len(keys["test"])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "clean_test_key_list.txt").unlink(), r"clean_test_key_list.txt not found"),
        (
            lambda r: (r / "noisy_label_kv.txt").write_text("images/0/00/train0.jpg 14\n"),
            r"noisy_label_kv.txt:1: label 14 is outside 0..13",
        ),
        (
            lambda r: (r / "clean_label_kv.txt").write_text("a 1\nb\n"),
            r"clean_label_kv.txt:2: expected '<key> <label>'",
        ),
        (
            lambda r: (r / "clean_label_kv.txt").write_text("a x\n"),
            r"clean_label_kv.txt:1: label 'x' is not an integer",
        ),
        (
            lambda r: (r / "images/1/01/val1.jpg").unlink(),
            r"clean_val_key_list.txt:2: image .*val1.jpg does not exist",
        ),
        (
            lambda r: (r / "clean_test_key_list.txt").write_text("images/0/00/test0.jpg\nnope\n"),
            r"clean_test_key_list.txt:2: key 'nope' has no label in .*clean_label_kv.txt",
        ),
    ],
)
def test_reader_refuses_malformed_files_naming_file_and_line(tree, damage, message):
    root, _ = tree
    damage(root)
    with pytest.raises(clothing1m.DataError, match=message):
        clothing1m.load_clothing1m(root)


def test_corrupt_image_is_refused_naming_list_line_and_image(tree):
    root, _ = tree
    (root / "images/2/02/train2.jpg").write_bytes(b"not a jpeg")
    data = clothing1m.load_clothing1m(root)
    with pytest.raises(clothing1m.DataError, match=r"noisy_train_key_list.txt:3: cannot decode"):
        clothing1m.decode(data["train"].paths[2], data["train"].sources[2], 16)


def test_resnet50_matches_torchvision_and_loads_its_checkpoint(tmp_path):
    net = resnet50(1000)
    assert sum(p.numel() for p in net.parameters()) == 25_557_032  # torchvision's resnet50
    keys = list(net.state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked"]  # fmt: skip
    assert "layer1.0.downsample.0.weight" in keys and "layer4.2.bn3.weight" in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"] and len(keys) == 320
    small = resnet50(1000, width=4)
    path = tmp_path / "imagenet.pth"
    torch.save(small.state_dict(), path)
    target = resnet50(14, width=4)
    clothing1m.load_pretrained(target, str(path))
    assert torch.equal(target.layer3[1].conv2.weight, small.layer3[1].conv2.weight)
    assert target.fc.weight.shape == (14, 4 * 8 * 4)  # width * 2**3 * expansion
    with pytest.raises(clothing1m.DataError, match=r"imagenet.pth: .*shape"):
        clothing1m.load_pretrained(resnet50(14, width=8), str(path))


def _args(root, out, *extra):
    return ["--data-dir", str(root), "--width", "2", "--resize", "16", "--crop", "12",
            "--batch-size", "8", "--epochs", "3", "--drop-epochs", "2", "--lr", "0.05",
            "--workers", "0", "--log-every", "2", "--checkpoint-every", "2", "--no-progress",
            "--out-dir", str(out), *extra]  # fmt: skip


def test_run_writes_results_and_lr_drops_after_the_epoch(tree, tmp_path):
    root, _ = tree
    weights = tmp_path / "w.pth"
    torch.save(resnet50(1000, width=2).state_dict(), weights)
    out = tmp_path / "runs"
    clothing1m.main(_args(root, out, "--pretrained", str(weights), "--loss", "gr"))
    run = out / "clothing1m_resnet50_gr_b16_l1_seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["iterations"] == 9 and config["milestones"] == [6]
    assert config["pretrained_sha"] is not None
    final = json.loads((run / "final.json").read_text())
    assert final["iterations"] == 9 and 0 <= final["test_acc_final"] <= 100
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    lrs = {r["iteration"]: r["lr"] for r in records if "lr" in r}
    assert lrs[6] == pytest.approx(0.05) and lrs[8] == pytest.approx(0.005)
    assert sum("test_acc" in r for r in records) == 3  # once per epoch


def test_killed_and_resumed_run_is_bit_identical(tree, tmp_path):
    root, _ = tree
    common = ["--from-scratch", "--loss", "gce"]
    clothing1m.main(_args(root, tmp_path / "a", *common))
    with pytest.raises(SimulatedKill):
        clothing1m.main(_args(root, tmp_path / "b", *common, "--halt-after", "5"))
    clothing1m.main(_args(root, tmp_path / "b", *common, "--resume"))
    name = "clothing1m_resnet50_gce_q0.7_seed0"
    a, b = tmp_path / "a" / name, tmp_path / "b" / name
    assert (a / "final.json").read_text() == (b / "final.json").read_text()
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key


def test_missing_pretrained_is_refused(tree, tmp_path):
    root, _ = tree
    with pytest.raises(SystemExit, match="--pretrained"):
        clothing1m.main(_args(root, tmp_path / "r"))


def test_table6_and_plan(tree, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "runs"
    for seed in (0, 1):
        clothing1m.main(_args(root, out, "--from-scratch", "--loss", "cce", "--epochs", "1",
                              "--seed", str(seed)))  # fmt: skip
    runs, _ = tables.read_runs(out)
    text = tables.render(runs)
    assert "Table 6" in text and "71.7" in text and "73.2" in text
    finals = [json.loads(p.read_text())["test_acc_final"] for p in out.rglob("final.json")]
    mean = sum(finals) / 2
    assert f"{mean:.1f}" in text.split("Table 6")[1]
    commands = tables.plan_commands_real(6, "D", "runs", 1, 1, pretrained="W")
    assert len(commands) == 3
    assert all("reference_training.clothing1m" in c and "--pretrained W" in c for c in commands)
    assert any("--loss gr --beta 16 --lam 1" in c for c in commands)


def test_resume_with_other_settings_is_refused_before_anything_is_written(tree, tmp_path):
    """Finished or not, a resume whose settings differ from the saved run is refused naming the
    differences, with config.json, the checkpoint and the results untouched (issue 13)."""
    root, _ = tree
    out = tmp_path / "runs"
    common = ["--from-scratch", "--loss", "cce", "--epochs", "1"]
    clothing1m.main(_args(root, out, *common))
    (run,) = out.iterdir()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(
        ValueError, match=r"settings differ from the checkpoint \(iterations: 3 -> 6\)"
    ):
        clothing1m.main(_args(root, out, *common, "--epochs", "2", "--resume"))
    with pytest.raises(ValueError, match=r"\(lr: 0.05 -> 0.1\)"):
        clothing1m.main(_args(root, out, *common, "--lr", "0.1", "--resume"))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert clothing1m.main(_args(root, out, *common, "--resume")) == 0  # same settings: skipped
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before

"""The MARS pipeline end to end on a tiny tree in the MARS layout (CPU, seconds).

Checked: the .mat track tables and name lists are read as torchreid's mars.py and the official
MARS-evaluation code read them (1-based inclusive frame ranges, 1-based query indices, frames in
bbox_<split>/<first 4 characters of the name>/); malformed files are refused naming the file and
row; the evaluation gives the CMC and mAP computed by hand for a small case (junk = same identity
and camera, and identity -1); the BN-Inception trunk has the published 1024-d feature; a killed
and resumed run is bit-identical; Table 7 and --plan 7.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")
scipy_io = pytest.importorskip("scipy.io")

from PIL import Image  # noqa: E402

from reference_training import mars, tables  # noqa: E402
from reference_training.clothing1m import DataError  # noqa: E402
from reference_training.train_cifar import SimulatedKill  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TRAIN = [(2, 1), (2, 3), (5, 1), (5, 2), (9, 4), (11, 6)]  # (pid, camera) of each track
TEST = [(1, 1), (1, 2), (3, 1), (3, 5), (0, 2), (-1, 3)]
QUERY = [1, 3]  # 1-based: tracks (1, 1) and (3, 1)


def _write_split(root: Path, split: str, tracks, frames=3) -> None:
    rng = np.random.default_rng(len(split))
    names, rows = [], []
    for t, (pid, cam) in enumerate(tracks, 1):
        start = len(names) + 1
        for f in range(1, frames + 1):
            name = (
                f"{pid:04d}C{cam}T{t:04d}F{f:03d}.jpg"
                if pid >= 0
                else f"00-1C{cam}T{t:04d}F{f:03d}.jpg"
            )
            path = root / f"bbox_{split}" / name[:4] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(path)
            names.append(name)
        rows.append([start, len(names), pid, cam])
    (root / "info").mkdir(exist_ok=True)
    (root / "info" / f"{split}_name.txt").write_text("\n".join(names) + "\n")
    scipy_io.savemat(root / "info" / f"tracks_{split}_info.mat",
                     {f"track_{split}_info": np.asarray(rows, dtype=np.float64)})  # fmt: skip


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "MARS"
    _write_split(root, "train", TRAIN)
    _write_split(root, "test", TEST)
    scipy_io.savemat(root / "info" / "query_IDX.mat", {"query_IDX": np.asarray([QUERY])})
    return root


def test_reader_reads_the_mars_layout(tree):
    data = mars.load_mars(tree)
    assert data["train"].pids.tolist() == [0, 0, 1, 1, 2, 3]  # relabelled 2, 5, 9, 11
    assert data["train"].cams.tolist() == [c for _, c in TRAIN]
    assert data["test"].pids.tolist() == [p for p, _ in TEST]  # not relabelled
    assert data["query"].tolist() == [0, 2]
    assert [p.name for p in data["test"].frames[5]] == [f"00-1C3T0006F00{f}.jpg" for f in (1, 2, 3)]
    assert data["train"].frames[1][0] == tree / "bbox_train/0002/0002C3T0002F001.jpg"


def _rewrite_mat(root, split, rows):
    scipy_io.savemat(root / "info" / f"tracks_{split}_info.mat",
                     {f"track_{split}_info": np.asarray(rows, dtype=np.float64)})  # fmt: skip


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "info/test_name.txt").unlink(), r"test_name.txt not found"),
        (lambda r: (r / "info/query_IDX.mat").unlink(), r"query_IDX.mat not found"),
        (lambda r: scipy_io.savemat(r / "info/query_IDX.mat", {"query_IDX": np.array([[7]])}),
         r"query_IDX.mat: query index 7 outside 1..6"),
        (lambda r: _rewrite_mat(r, "train", [[1, 3, 2, 1], [4, 19, 2, 3]]),
         r"tracks_train_info.mat row 2: frames 4..19 outside 1..18"),
        (lambda r: _rewrite_mat(r, "train", [[1, 3, 2, 1], [4, 6, 5, 3]]),
         r"train_name.txt:4: frame '0002C3T0002F001.jpg' is not of pid 5 camera 3 .*row 2"),
        (lambda r: (r / "bbox_test/0003/0003C5T0004F002.jpg").unlink(),
         r"test_name.txt:11: image .*0003C5T0004F002.jpg does not exist .*row 4"),
        (lambda r: scipy_io.savemat(r / "info/tracks_test_info.mat", {"other": np.ones((2, 4))}),
         r"tracks_test_info.mat: no variable 'track_test_info'"),
        (lambda r: (r / "info/tracks_test_info.mat").write_bytes(b"junk"),
         r"tracks_test_info.mat: cannot read"),
    ],
)  # fmt: skip
def test_reader_refuses_malformed_files(tree, damage, message):
    damage(tree)
    with pytest.raises(DataError, match=message):
        mars.load_mars(tree)


def test_corrupt_frame_is_refused_naming_the_track(tree):
    (tree / "bbox_test/0003/0003C1T0003F002.jpg").write_bytes(b"not a jpeg")
    data = mars.load_mars(tree)
    frames = mars.TestFrames(mars.test_frame_list(data["test"], None), 20, 16)
    with pytest.raises(DataError, match=r"tracks_test_info.mat row 3: cannot decode image"):
        frames[7]


def test_evaluation_on_a_hand_made_case():
    # gallery: the query itself, A (1, cam 2), B (2, cam 2), C (1, cam 3), D (-1), E (1, cam 1)
    g_pids = np.array([1, 1, 2, 1, -1, 1])
    g_cams = np.array([1, 2, 2, 3, 2, 1])
    sim = np.array([
        [1.0, 0.7, 0.8, 0.5, 0.9, 0.6],  # query 1 cam 1: ranking q D B A E C -> B A C
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # identity 2, camera 2: no good match -> left out
        [0.1, 0.2, 0.9, 0.3, 0.4, 0.5],  # identity 2, camera 1: B first
    ])  # fmt: skip
    cmc, mean_ap = mars.evaluate(sim, np.array([1, 2, 2]), np.array([1, 2, 1]), g_pids, g_cams)
    # query 1: hits [0, 1, 1]; AP = 0 + 0.5 * (0 + 1/2) / 2 + 0.5 * (1/2 + 2/3) / 2
    ap1 = 0.5 * 0.5 / 2 + 0.5 * (0.5 + 2 / 3) / 2
    assert mean_ap == pytest.approx((ap1 + 1.0) / 2)
    assert cmc[0] == pytest.approx(0.5) and cmc[1] == pytest.approx(1.0)
    assert np.all(cmc[1:] == 1.0)
    with pytest.raises(ValueError, match="no query"):
        mars.evaluate(sim[1:2], np.array([2]), np.array([2]), g_pids, g_cams)


def test_bn_inception_has_the_published_widths():
    net = mars.BNInception(625)
    assert net.feature_dim == 1024
    assert [b.out_channels for b in net.blocks] == [
        256,
        320,
        576,
        576,
        576,
        576,
        576,
        1024,
        1024,
        1024,
    ]
    assert net.features(torch.zeros(1, 3, 64, 64)).shape == (1, 1024)


def _args(root, out, *extra):
    return ["--data-dir", str(root), "--width-divisor", "16", "--resize", "20", "--crop", "16",
            "--batch-size", "4", "--frames-per-video", "2", "--iterations", "6",
            "--halve-every", "3", "--lr", "0.05", "--workers", "0", "--log-every", "2",
            "--checkpoint-every", "2", "--eval-every", "3", "--no-progress",
            "--out-dir", str(out), *extra]  # fmt: skip


def test_killed_and_resumed_run_is_bit_identical_and_lr_halves(tree, tmp_path):
    clothing = ["--loss", "gr"]
    mars.main(_args(tree, tmp_path / "a", *clothing))
    with pytest.raises(SimulatedKill):
        mars.main(_args(tree, tmp_path / "b", *clothing, "--halt-after", "3"))
    mars.main(_args(tree, tmp_path / "b", *clothing, "--resume"))
    name = "mars_bninception_gr_b16_l1_seed0"
    a, b = tmp_path / "a" / name, tmp_path / "b" / name
    assert (a / "final.json").read_text() == (b / "final.json").read_text()
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
    config = json.loads((a / "config.json").read_text())
    assert config["num_classes"] == 4 and config["milestones"] == [3]
    records = [json.loads(line) for line in (a / "log.jsonl").read_text().splitlines()]
    lrs = {r["iteration"]: r["lr"] for r in records if "lr" in r}
    assert lrs[2] == pytest.approx(0.05) and lrs[4] == pytest.approx(0.025)
    final = json.loads((a / "final.json").read_text())
    assert 0 <= final["map"] <= 100 and 0 <= final["cmc1"] <= 100


def test_table7_and_plan(tree, tmp_path):
    out = tmp_path / "runs"
    mars.main(_args(tree, out, "--loss", "mae", "--iterations", "2"))
    runs, _ = tables.read_runs(out)
    text = tables.render(runs)
    final = json.loads(next(out.rglob("final.json")).read_text())
    table7 = text.split("Table 7")[1]
    assert f"{final['map']:.1f} (1)" in table7 and "12.0" in table7 and "84.3" in table7
    commands = tables.plan_commands_real(7, "D", "runs", 1, 1)
    assert len(commands) == 5 and all("reference_training.mars" in c for c in commands)
    assert any("--loss gr --beta 16 --lam 1" in c for c in commands)

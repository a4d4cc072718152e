"""MARS video re-identification with a BN-Inception trunk and CCE, MAE, GCE or GR (paper Sec. 4.4, Table 7).

Data: the MARS layout (Zheng et al. 2016), as deep-person-reid/torchreid's ``mars.py`` and the
official MARS-evaluation code (github.com/liangzheng06/MARS-evaluation, ``test_mars.m``) read it:
under --data-dir

    bbox_train/<pid>/<name>.jpg   frames; <name> = pid (4) + 'C' + camera + 'T' + tracklet + 'F' + frame
    bbox_test/<pid>/<name>.jpg    (the folder is the first 4 characters of the name)
    info/train_name.txt           one frame name per line, in track order
    info/test_name.txt
    info/tracks_train_info.mat    'track_train_info': rows (start, end, pid, camera), start/end
    info/tracks_test_info.mat     'track_test_info'    1-based inclusive indices into *_name.txt
    info/query_IDX.mat            'query_IDX': 1-based indices of the query tracks among the test ones

The .mat files are read with scipy.io.loadmat (never pickle). Malformed rows (indices outside the
name list, frames whose names disagree with the row's pid or camera, missing frames), query
indices outside the test tracks and undecodable images are refused with an error naming the file
and row (or line). Training identities are relabelled 0..N-1 in order (N = 625 for MARS).

Model and protocol (paper Sec. 4.4, after Liu et al. 2017 and Wang et al. 2019a): GoogLeNet V2
(BN-Inception, Ioffe & Szegedy 2015) trunk with a linear classifier over the 625 training
identities; a video is an image set: a training example is --frames-per-video frames of one track
whose features are averaged (default 1: a frame labelled with its track's identity), a test video
is the average of the features of its frames (all of them, or --test-frames evenly spaced ones).
SGD momentum 0.9, weight decay 5e-4, lr 0.01 halved every 10k iterations, 50k iterations, batch
180 frames, resize to 256x256, random 227x227 crop, random flip (test: centre crop). Evaluation:
L2-normalised video features, cosine similarity, the MARS protocol of ``evaluate`` (below).

Resuming, determinism, --amp, torchrun: as reference_training.clothing1m.

Example::

    python -m reference_training.mars --data-dir ~/MARS --loss gr --beta 16 --lam 1 \\
        --amp bf16 --out-dir runs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_training import clothing1m
from reference_training.clothing1m import DataError, decode
from reference_training.train_cifar import loss_tag

ORDER_STREAM, AUGMENT_STREAM = 2, 3

# ---------------------------------------------------------------------------
# the MARS files
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracks:
    """Videos: frame paths of each track, identity (relabelled 0..N-1 for training), camera."""

    frames: tuple[tuple[Path, ...], ...]
    pids: np.ndarray
    cams: np.ndarray
    sources: tuple[str, ...]  # "file row r"

    def __len__(self) -> int:
        return len(self.frames)


def _loadmat(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        content = loadmat(str(path))
    except Exception as error:
        raise DataError(f"{path}: cannot read the .mat file: {error}") from None
    if key not in content:
        raise DataError(
            f"{path}: no variable {key!r} (has {sorted(k for k in content if not k.startswith('__'))})"
        )
    return np.asarray(content[key])


def read_tracks(root: Path, split: str, relabel: bool) -> Tracks:
    info = root / "info"
    names_path = info / f"{split}_name.txt"
    if not names_path.is_file():
        raise DataError(f"{names_path} not found")
    names = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
    mat_path = info / f"tracks_{split}_info.mat"
    rows = _loadmat(mat_path, f"track_{split}_info")
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise DataError(
            f"{mat_path}: expected rows (start, end, pid, camera), got shape {rows.shape}"
        )
    frames, pids, cams, sources = [], [], [], []
    for r, row in enumerate(rows.astype(np.int64), 1):
        start, end, pid, cam = (int(v) for v in row[:4])
        where = f"{mat_path} row {r}"
        if not 1 <= start <= end <= len(names):
            raise DataError(
                f"{where}: frames {start}..{end} outside 1..{len(names)} of {names_path}"
            )
        paths = []
        for line in range(start, end + 1):
            name = names[line - 1]
            if pid >= 0 and (name[:4] != f"{pid:04d}" or name[5:6] != str(cam)):
                raise DataError(
                    f"{names_path}:{line}: frame {name!r} is not of pid {pid} camera {cam} ({where})"
                )
            path = root / f"bbox_{split}" / name[:4] / name
            if not path.is_file():
                raise DataError(f"{names_path}:{line}: image {path} does not exist ({where})")
            paths.append(path)
        frames.append(tuple(paths))
        pids.append(pid)
        cams.append(cam)
        sources.append(where)
    pids_array = np.asarray(pids, dtype=np.int64)
    if relabel:
        unique = sorted(set(pids))
        mapping = {p: i for i, p in enumerate(unique)}
        pids_array = np.asarray([mapping[p] for p in pids], dtype=np.int64)
    return Tracks(tuple(frames), pids_array, np.asarray(cams, dtype=np.int64), tuple(sources))


def load_mars(root: str | Path) -> dict[str, Any]:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"MARS directory {root} does not exist")
    train = read_tracks(root, "train", relabel=True)
    test = read_tracks(root, "test", relabel=False)
    query_path = root / "info" / "query_IDX.mat"
    query = _loadmat(query_path, "query_IDX").astype(np.int64).ravel()
    bad = query[(query < 1) | (query > len(test))]
    if len(bad):
        raise DataError(f"{query_path}: query index {int(bad[0])} outside 1..{len(test)}")
    return {"train": train, "test": test, "query": query - 1}


# ---------------------------------------------------------------------------
# the MARS evaluation protocol
# ---------------------------------------------------------------------------


def evaluate(
    similarity: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
) -> tuple[np.ndarray, float]:
    """CMC curve and mAP (fractions) of the MARS protocol (MARS-evaluation's evaluation_mars.m).

    ``similarity`` is (queries, gallery), larger = closer; the gallery is every test track (the
    queries included). For each query: good = same identity, other camera; junk (removed from the
    ranking) = same identity and same camera (the query itself among them) and identity -1;
    queries with no good match are left out. AP is the area under the precision-recall curve by
    the trapezoid rule (``ap += (r - r_old) * (p_old + p) / 2``, p_old starting at 1), as in
    compute_AP.m.
    """
    cmc = np.zeros(similarity.shape[1])
    aps, valid = [], 0
    for q in range(similarity.shape[0]):
        good = (gallery_pids == query_pids[q]) & (gallery_cams != query_cams[q])
        junk = ((gallery_pids == query_pids[q]) & (gallery_cams == query_cams[q])) | (
            gallery_pids == -1
        )
        n_good = int(good.sum())
        if n_good == 0:
            continue
        order = np.argsort(-similarity[q], kind="stable")
        hits = good[order][~junk[order]]
        first = int(np.argmax(hits))
        cmc[first:] += 1
        ap, old_recall, old_precision, found = 0.0, 0.0, 1.0, 0
        for rank, hit in enumerate(hits, 1):
            if hit:
                found += 1
            recall, precision = found / n_good, found / rank
            ap += (recall - old_recall) * (old_precision + precision) / 2
            old_recall, old_precision = recall, precision
            if found == n_good:
                break
        aps.append(ap)
        valid += 1
    if not valid:
        raise ValueError("no query has a correct match in the gallery")
    return cmc / valid, float(np.mean(aps))


# ---------------------------------------------------------------------------
# BN-Inception (GoogLeNet V2)
# ---------------------------------------------------------------------------


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Inception(nn.Module):
    """BN-Inception module: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool(-1x1). ``c1 = 0`` and
    ``proj = 0`` make the stride-2 modules (3c, 4e) with a max-pool branch."""

    def __init__(
        self,
        cin: int,
        c1: int,
        r3: int,
        c3: int,
        rd: int,
        cd: int,
        proj: int,
        pool: str,
        stride: int,
    ) -> None:
        super().__init__()
        self.b1 = ConvBN(cin, c1, 1) if c1 else None
        self.b3 = nn.Sequential(ConvBN(cin, r3, 1), ConvBN(r3, c3, 3, stride))
        self.bd = nn.Sequential(ConvBN(cin, rd, 1), ConvBN(rd, cd, 3), ConvBN(cd, cd, 3, stride))
        pooling = nn.AvgPool2d(3, 1, 1) if pool == "avg" else nn.MaxPool2d(3, stride, 1)
        self.bp = nn.Sequential(pooling, ConvBN(cin, proj, 1)) if proj else pooling
        self.out_channels = c1 + c3 + cd + (proj or cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [] if self.b1 is None else [self.b1(x)]
        return torch.cat([*parts, self.b3(x), self.bd(x), self.bp(x)], 1)


#: Ioffe & Szegedy (2015), Fig. 5: (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3,
#: pool projection, pool, stride) of modules 3a ... 5b.
BN_INCEPTION = (
    (64, 64, 64, 64, 96, 32, "avg", 1), (64, 64, 96, 64, 96, 64, "avg", 1),
    (0, 128, 160, 64, 96, 0, "max", 2),
    (224, 64, 96, 96, 128, 128, "avg", 1), (192, 96, 128, 96, 128, 128, "avg", 1),
    (160, 128, 160, 128, 160, 96, "avg", 1), (96, 128, 192, 160, 192, 96, "avg", 1),
    (0, 128, 192, 192, 256, 0, "max", 2),
    (352, 192, 320, 160, 224, 128, "avg", 1), (352, 192, 320, 192, 224, 128, "max", 1),
)  # fmt: skip


class BNInception(nn.Module):
    """GoogLeNet V2 trunk (1024-d pooled feature at full width) and a linear classifier.

    ``divisor`` divides every channel count (1 = the published network; larger only for tests)."""

    def __init__(self, num_classes: int, divisor: int = 1) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(1, n // divisor) if n else 0

        self.stem = nn.Sequential(
            ConvBN(3, c(64), 7, 2), nn.MaxPool2d(3, 2, 1),
            ConvBN(c(64), c(64), 1), ConvBN(c(64), c(192), 3), nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        blocks, cin = [], c(192)
        for c1, r3, c3, rd, cd, proj, pool, stride in BN_INCEPTION:
            block = Inception(cin, c(c1), c(r3), c(c3), c(rd), c(cd), c(proj), pool, stride)
            blocks.append(block)
            cin = block.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class VideoClassifier(nn.Module):
    """(videos x frames, C, H, W) -> logits of each video's average frame feature."""

    def __init__(self, net: BNInception, frames: int) -> None:
        super().__init__()
        self.net, self.frames = net, frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net.features(x)
        return self.net.fc(f.view(-1, self.frames, f.shape[1]).mean(1))


# ---------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------


class TrainBatches(torch.utils.data.Dataset):
    """Item ``i``: this rank's videos of iteration ``i`` (frames stacked video by video, labels).

    The order of the training tracks is a permutation per epoch of (seed, epoch); the frames of a
    video and the crops and flips are drawn from (seed, iteration)."""

    def __init__(self, tracks: Tracks, config: dict[str, Any], rank: int, world: int) -> None:
        self.tracks, self.cfg, self.rank, self.world = tracks, config, rank, world

    def __len__(self) -> int:
        return self.cfg["iterations"]

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        videos, k = cfg["batch_size"] // cfg["frames_per_video"], cfg["frames_per_video"]
        size = len(self.tracks)
        epoch, step = divmod(iteration, size // videos)
        order = np.random.default_rng([cfg["seed"], ORDER_STREAM, epoch]).permutation(size)
        chosen = order[step * videos : (step + 1) * videos]
        rng = np.random.default_rng([cfg["seed"], AUGMENT_STREAM, iteration])
        picks = rng.random((videos, k))
        offsets = rng.integers(0, cfg["resize"] - cfg["crop"] + 1, size=(2, videos, k))
        flips = rng.random((videos, k)) < 0.5
        part = range(self.rank * videos // self.world, (self.rank + 1) * videos // self.world)
        images, crop = [], cfg["crop"]
        for v in part:
            frames = self.tracks.frames[int(chosen[v])]
            for j in range(k):
                path = frames[int(picks[v, j] * len(frames))]
                full = decode(path, self.tracks.sources[int(chosen[v])], cfg["resize"])
                r, c = offsets[0, v, j], offsets[1, v, j]
                window = full[:, r : r + crop, c : c + crop]
                images.append(window[:, :, ::-1] if flips[v, j] else window)
        labels = self.tracks.pids[chosen[part.start : part.stop]]
        return torch.from_numpy(np.stack(images).copy()), torch.from_numpy(labels)


class TestFrames(torch.utils.data.Dataset):
    """(frame, video index) pairs; centre crops."""

    def __init__(self, items: list[tuple[Path, int, str]], resize: int, crop: int) -> None:
        self.items, self.resize, self.crop = items, resize, crop

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        path, video, source = self.items[k]
        full = decode(path, source, self.resize)
        top = (self.resize - self.crop) // 2
        window = full[:, top : top + self.crop, top : top + self.crop]
        return torch.from_numpy(np.ascontiguousarray(window)), video


def test_frame_list(tracks: Tracks, limit: int | None) -> list[tuple[Path, int, str]]:
    items = []
    for v, frames in enumerate(tracks.frames):
        if limit is not None and len(frames) > limit:
            frames = tuple(frames[int(i)] for i in np.linspace(0, len(frames) - 1, limit))
        items += [(p, v, tracks.sources[v]) for p in frames]
    return items


# ---------------------------------------------------------------------------
# the run (clothing1m's Trainer with MARS's data, model and evaluation)
# ---------------------------------------------------------------------------


RESULT_SETTINGS = (
    "pretrained_sha", "width_divisor", "loss", "beta", "lam", "q", "eps", "transform",
    "normalize", "iterations", "milestones", "lr", "momentum", "weight_decay", "batch_size",
    "frames_per_video", "resize", "crop", "test_frames", "seed", "amp", "log_every", "eval_every",
)  # fmt: skip


class Trainer(clothing1m.Trainer):
    result_settings = RESULT_SETTINGS
    lr_gamma = 0.5  # halved every --halve-every iterations

    def setup_data(self, data: dict[str, Any]) -> None:
        self.train, self.test, self.query = data["train"], data["test"], data["query"]

    def build_net(self) -> nn.Module:
        net = BNInception(self.config["num_classes"], divisor=self.config["width_divisor"])
        if self.config["pretrained"] is not None:
            state = torch.load(self.config["pretrained"], map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            if unexpected or [k for k in missing if not k.startswith("fc.")]:
                raise DataError(
                    f"{self.config['pretrained']}: not a state_dict of this BNInception "
                    f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
                )
        self.trunk = net
        return VideoClassifier(net, self.config["frames_per_video"])

    def train_batches(self) -> torch.utils.data.Dataset:
        return TrainBatches(self.train, self.config, self.ctx.rank, self.world)

    @torch.no_grad()
    def video_features(self) -> np.ndarray:
        """Average frame feature of every test video (all ranks get all of them)."""
        if self.ctx.distributed:
            for buffer in self.net.buffers():
                dist.broadcast(buffer, src=0)
        self.net.eval()
        items = test_frame_list(self.test, self.config["test_frames"])
        own = items[self.ctx.rank :: self.world]
        loader = torch.utils.data.DataLoader(
            TestFrames(own, self.config["resize"], self.config["crop"]),
            batch_size=self.config["eval_batch_size"], num_workers=self.config["workers"],
        )  # fmt: skip
        sums = torch.zeros(len(self.test), self.trunk.feature_dim, dtype=torch.float64)
        counts = torch.zeros(len(self.test), dtype=torch.float64)
        for images, videos in loader:
            with self.autocast():
                f = self.trunk.features(self.normalize(images))
            sums.index_add_(0, videos, f.double().cpu())
            counts.index_add_(0, videos, torch.ones(len(videos), dtype=torch.float64))
        if self.ctx.distributed:
            sums, counts = sums.to(self.device), counts.to(self.device)
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        return (sums.cpu() / counts.cpu()[:, None]).numpy()

    def retrieval(self) -> dict[str, float]:
        features = self.video_features()
        features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        q = self.query
        cmc, mean_ap = evaluate(
            features[q] @ features.T, self.test.pids[q], self.test.cams[q],
            self.test.pids, self.test.cams,
        )  # fmt: skip
        return {
            "map": 100.0 * mean_ap,
            "cmc1": 100.0 * cmc[0],
            "cmc5": 100.0 * cmc[min(4, len(cmc) - 1)],
        }

    def evaluate(self) -> dict[str, Any]:
        return {"iteration": self.iteration, **self.retrieval()}

    def final_result(self) -> dict[str, Any]:
        return self.retrieval()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reference_training.mars",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", required=True, help="the MARS directory (see above)")
    p.add_argument("--pretrained", default=None, help="optional state_dict of this BNInception")
    p.add_argument("--width-divisor", type=int, default=1, help="divide all widths (tests)")
    p.add_argument("--loss", choices=("cce", "mae", "gce", "gr"), default="gr")
    p.add_argument("--beta", type=float, default=16.0, help="GR")
    p.add_argument("--lam", type=float, default=1.0, help="GR")
    p.add_argument("--q", type=float, default=0.7, help="GCE")
    p.add_argument("--eps", type=float, default=1e-6, help="GR")
    p.add_argument("--transform", choices=("exp", "identity"), default="exp", help="GR")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", help="GR")
    p.add_argument("--iterations", type=int, default=50000)
    p.add_argument("--halve-every", type=int, default=10000, help="lr x0.5 every this many")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=180, help="global batch, in frames")
    p.add_argument("--frames-per-video", type=int, default=1, help="frames averaged per example")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=227)
    p.add_argument("--test-frames", type=int, default=None, help="frames per test video (all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--run-name", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=10000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--halt-after", type=int, default=None, help=argparse.SUPPRESS)
    return p


def resolve_config(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in vars(args).items() if k != "halt_after"}
    if args.batch_size % args.frames_per_video:
        raise ValueError("--batch-size must be a multiple of --frames-per-video")
    if args.crop > args.resize:
        raise ValueError(f"--crop {args.crop} exceeds --resize {args.resize}")
    videos = args.batch_size // args.frames_per_video
    if len(data["train"]) < videos:
        raise ValueError(f"{len(data['train'])} training tracks, fewer than the {videos} per batch")
    config.update(
        experiment="mars",
        num_classes=int(data["train"].pids.max()) + 1,
        milestones=list(range(args.halve_every, args.iterations, args.halve_every)),
        pretrained_sha=None if args.pretrained is None else clothing1m._sha256(args.pretrained),
        steps_per_epoch=len(data["train"]) // videos,
    )
    if config["loss"] != "gr":
        for key in ("beta", "lam", "eps", "transform", "normalize"):
            config[key] = None
    if config["loss"] != "gce":
        config["q"] = None
    for key in ("iterations", "halve_every", "checkpoint_every", "eval_every", "log_every"):
        if config[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1")
    if config["run_name"] is None:
        config["run_name"] = f"mars_bninception_{loss_tag(config)}_seed{args.seed}"
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def describe(data: dict[str, Any]) -> dict[str, Any]:
        return {"train_tracks": len(data["train"]), "test_tracks": len(data["test"]),
                "queries": len(data["query"])}  # fmt: skip

    return clothing1m.run_experiment(
        args, Trainer, lambda: load_mars(args.data_dir), resolve_config, describe
    )


if __name__ == "__main__":
    raise SystemExit(main())

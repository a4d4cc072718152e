"""Clothing1M with an ImageNet-initialised ResNet-50 and CCE, GCE or GR (the paper, Sec. 4.3, Table 6).

Data: the distribution's own layout (Xiao et al. 2015, https://github.com/Cysu/noisy_label), as the
public loaders read it (DivideMix's dataloader_clothing1M.py, MLNT's): under --data-dir

    images/<a>/<bc>/<name>.jpg       the images
    noisy_label_kv.txt               "<key> <label>" per line, key = path relative to --data-dir
    clean_label_kv.txt               (e.g. "images/0/00/xxx.jpg 3"), labels 0..13
    noisy_train_key_list.txt         one key per line: training images (noisy labels)
    clean_val_key_list.txt           validation images (clean labels)
    clean_test_key_list.txt          test images (clean labels)

The list files may also be in an ``annotations/`` subdirectory (MLNT's copy). A line that cannot be
parsed, a label outside 0..13, a key without a label, a key naming a missing image and an image
that cannot be decoded are refused with an error naming the file and the line.

Protocol (paper Sec. 4.3, after Patrini et al. 2017 and Tanaka et al. 2018): ResNet-50 initialised
from an ImageNet checkpoint (--pretrained: a torchvision-format state_dict file, read with
torch.load(weights_only=True); the 1000-way fc is replaced by a 14-way one; nothing is
downloaded), SGD momentum 0.9, weight decay 1e-3, lr 1e-3 divided by 10 after 5 epochs,
10 epochs, batch 64, resize to 256x256, random 224x224 crop, random horizontal flip; GR with
beta=16, lam=1; evaluated on the clean test list (resize 256x256, centre 224 crop). Per-channel
ImageNet normalisation (the pretrained model's).

Resuming, determinism, --amp, torchrun: as reference_training.train_cifar (the order is a function
of (seed, epoch), the crops and flips of (seed, iteration); a resumed CPU run ends bit-identical to
an uninterrupted one). Images are decoded with Pillow in --workers DataLoader processes.

Example::

    python -m reference_training.clothing1m --data-dir ~/clothing1m \\
        --pretrained resnet50-0676ba61.pth --loss gr --beta 16 --lam 1 --amp bf16 --out-dir runs
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
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

import emphasis
from reference_training.resnet50 import resnet50
from reference_training.train_cifar import (
    CheckpointError,
    Context,
    Meters,
    SimulatedKill,
    _progress_bar,
    atomic_write_bytes,
    build_loss,
    load_checkpoint,
    prepare_run_dir,
    rng_states,
    save_json,
    set_rng_states,
    settings_differences,
    setup_context,
)

NUM_CLASSES = 14
CHECKPOINT_FORMAT = 1
ORDER_STREAM, AUGMENT_STREAM = 2, 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LIST_FILES = {
    "noisy_kv": "noisy_label_kv.txt",
    "clean_kv": "clean_label_kv.txt",
    "train": "noisy_train_key_list.txt",
    "val": "clean_val_key_list.txt",
    "test": "clean_test_key_list.txt",
}


class DataError(ValueError):
    """A malformed Clothing1M file; the message names the file (and line)."""


# ---------------------------------------------------------------------------
# the distribution's files
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Image paths, labels, and where each key came from (for error messages)."""

    paths: tuple[Path, ...]
    labels: np.ndarray
    sources: tuple[str, ...]  # "list file:line"

    def __len__(self) -> int:
        return len(self.paths)


def _find(root: Path, name: str) -> Path:
    for candidate in (root / name, root / "annotations" / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root / name} not found (nor in {root / 'annotations'})")


def read_label_kv(path: Path) -> dict[str, tuple[int, int]]:
    """``key -> (label, line number)`` of a ``*_label_kv.txt`` file."""
    labels: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected '<key> <label>', got {line!r}")
        try:
            label = int(fields[1])
        except ValueError:
            raise DataError(f"{path}:{number}: label {fields[1]!r} is not an integer") from None
        if not 0 <= label < NUM_CLASSES:
            raise DataError(f"{path}:{number}: label {label} is outside 0..{NUM_CLASSES - 1}")
        labels[fields[0]] = (label, number)
    return labels


def read_split(root: Path, list_name: str, kv: dict[str, tuple[int, int]], kv_path: Path) -> Split:
    list_path = _find(root, list_name)
    paths, labels, sources = [], [], []
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        key = line.strip()
        if not key:
            continue
        if key not in kv:
            raise DataError(f"{list_path}:{number}: key {key!r} has no label in {kv_path}")
        image = root / key
        if not image.is_file():
            raise DataError(f"{list_path}:{number}: image {image} does not exist")
        paths.append(image)
        labels.append(kv[key][0])
        sources.append(f"{list_path}:{number}")
    if not paths:
        raise DataError(f"{list_path} lists no images")
    return Split(tuple(paths), np.asarray(labels, dtype=np.int64), tuple(sources))


def load_clothing1m(root: str | Path) -> dict[str, Split]:
    """The noisy training split and the clean validation and test splits."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"Clothing1M directory {root} does not exist")
    noisy_path, clean_path = (
        _find(root, LIST_FILES["noisy_kv"]),
        _find(root, LIST_FILES["clean_kv"]),
    )
    noisy, clean = read_label_kv(noisy_path), read_label_kv(clean_path)
    return {
        "train": read_split(root, LIST_FILES["train"], noisy, noisy_path),
        "val": read_split(root, LIST_FILES["val"], clean, clean_path),
        "test": read_split(root, LIST_FILES["test"], clean, clean_path),
    }


def decode(path: Path, source: str, size: int) -> np.ndarray:
    """RGB ``(3, size, size)`` uint8, resized with bilinear filtering (Pillow)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises several types for damaged files
        raise DataError(f"{source}: cannot decode image {path}: {error}") from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


# ---------------------------------------------------------------------------
# deterministic batches
# ---------------------------------------------------------------------------


def train_batch_plan(
    seed: int, iteration: int, size: int, batch: int, resize: int, crop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices, crop rows, crop columns and flip flags of the global batch of ``iteration``."""
    steps = size // batch
    epoch, step = divmod(iteration, steps)
    order = np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(size)
    rng = np.random.default_rng([seed, AUGMENT_STREAM, iteration])
    offsets = rng.integers(0, resize - crop + 1, size=(2, batch))
    flips = rng.random(batch) < 0.5
    return order[step * batch : (step + 1) * batch], offsets[0], offsets[1], flips


class TrainBatches(torch.utils.data.Dataset):
    """Item ``i`` = this rank's part of the global batch of iteration ``i`` (images, labels)."""

    def __init__(self, split: Split, config: dict[str, Any], rank: int, world: int) -> None:
        self.split, self.cfg, self.rank, self.world = split, config, rank, world

    def __len__(self) -> int:
        return self.cfg["iterations"]

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, b = self.cfg, self.cfg["batch_size"]
        index, rows, cols, flips = train_batch_plan(
            cfg["seed"], iteration, len(self.split), b, cfg["resize"], cfg["crop"]
        )
        part = range(self.rank * b // self.world, (self.rank + 1) * b // self.world)
        crop = cfg["crop"]
        images = []
        for j in part:
            i = int(index[j])
            full = decode(self.split.paths[i], self.split.sources[i], cfg["resize"])
            window = full[:, rows[j] : rows[j] + crop, cols[j] : cols[j] + crop]
            images.append(window[:, :, ::-1] if flips[j] else window)
        labels = self.split.labels[index[part.start : part.stop]]
        return torch.from_numpy(np.stack(images).copy()), torch.from_numpy(labels)


class EvalImages(torch.utils.data.Dataset):
    """Resize, centre crop; item = (image, label)."""

    def __init__(self, split: Split, indices: Sequence[int], resize: int, crop: int) -> None:
        self.split, self.indices, self.resize, self.crop = split, list(indices), resize, crop

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = self.indices[k]
        full = decode(self.split.paths[i], self.split.sources[i], self.resize)
        top = (self.resize - self.crop) // 2
        window = full[:, top : top + self.crop, top : top + self.crop]
        return torch.from_numpy(np.ascontiguousarray(window)), int(self.split.labels[i])


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reference_training.clothing1m",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", required=True, help="the Clothing1M directory (see above)")
    p.add_argument(
        "--pretrained",
        default=None,
        help="ImageNet ResNet-50 state_dict (torchvision format); required unless --from-scratch",
    )
    p.add_argument("--from-scratch", action="store_true", help="random init (not the paper)")
    p.add_argument("--width", type=int, default=64, help="ResNet-50 base width (64 = standard)")
    p.add_argument("--loss", choices=("cce", "mae", "gce", "gr"), default="gr")
    p.add_argument("--beta", type=float, default=16.0, help="GR")
    p.add_argument("--lam", type=float, default=1.0, help="GR")
    p.add_argument("--q", type=float, default=0.7, help="GCE")
    p.add_argument("--eps", type=float, default=1e-6, help="GR")
    p.add_argument("--transform", choices=("exp", "identity"), default="exp", help="GR")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", help="GR")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--drop-epochs", type=int, nargs="*", default=[5], help="lr x0.1 after these")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64, help="global batch size")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--max-train", type=int, default=None, help="use the first N training keys")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--run-name", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=None, help="default: once per epoch")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=8, help="image decoding processes")
    p.add_argument("--device", default=None)
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--halt-after", type=int, default=None, help=argparse.SUPPRESS)
    return p


RESULT_SETTINGS = (
    "pretrained_sha", "from_scratch", "width", "loss", "beta", "lam", "q", "eps", "transform",
    "normalize", "iterations", "milestones", "lr", "momentum", "weight_decay", "batch_size",
    "resize", "crop", "train_size", "seed", "amp", "log_every", "eval_every",
)  # fmt: skip


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_config(args: argparse.Namespace, train_size: int) -> dict[str, Any]:
    if args.pretrained is None and not args.from_scratch:
        raise SystemExit("give --pretrained FILE (an ImageNet ResNet-50) or --from-scratch")
    config = {k: v for k, v in vars(args).items() if k != "halt_after"}
    if args.max_train is not None:
        train_size = min(train_size, args.max_train)
    if args.crop > args.resize:
        raise ValueError(f"--crop {args.crop} exceeds --resize {args.resize}")
    if train_size < args.batch_size:
        raise ValueError(f"{train_size} training images, fewer than --batch-size")
    steps = train_size // args.batch_size
    config.update(
        train_size=train_size,
        steps_per_epoch=steps,
        iterations=steps * args.epochs,
        milestones=[steps * e for e in args.drop_epochs if 0 < e < args.epochs],
        eval_every=steps if args.eval_every is None else args.eval_every,
        pretrained_sha=None if args.pretrained is None else _sha256(args.pretrained),
    )
    if config["loss"] != "gr":
        for key in ("beta", "lam", "eps", "transform", "normalize"):
            config[key] = None
    if config["loss"] != "gce":
        config["q"] = None
    for key in ("checkpoint_every", "eval_every", "log_every", "epochs", "eval_batch_size"):
        if config[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1")
    if config["run_name"] is None:
        from reference_training.train_cifar import loss_tag

        config["run_name"] = f"clothing1m_resnet50_{loss_tag(config)}_seed{args.seed}"
    return config


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


def load_pretrained(net: nn.Module, path: str) -> None:
    """Copy an ImageNet ResNet-50 state_dict (torchvision key names) into ``net``, except fc."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DataError(f"{path}: cannot read the checkpoint: {error}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise DataError(
            f"{path}: not a torchvision ResNet-50 state_dict (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise DataError(
                f"{path}: {key} has shape {tuple(value.shape)}, want {tuple(own[key].shape)}"
            )
    net.load_state_dict(state, strict=False)


class Trainer:
    result_settings = RESULT_SETTINGS  # a checkpoint is resumed only if these match
    lr_gamma = 0.1  # the factor at each milestone

    def __init__(self, config: dict[str, Any], ctx: Context, data: dict[str, Split]) -> None:
        self.config, self.ctx, self.device = config, ctx, ctx.device
        self.world = ctx.world_size
        self.run_dir = Path(config["out_dir"]) / config["run_name"]
        self.progress = config["progress"] and ctx.is_main
        if config["batch_size"] % self.world:
            raise ValueError("--batch-size must be divisible by the number of processes")
        if config["amp"] == "fp16" and self.device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device")
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config["amp"]]
        self.setup_data(data)
        torch.manual_seed(config["seed"])
        self.net = self.build_net()
        self.memory_format = (
            torch.channels_last if config["channels_last"] else torch.contiguous_format
        )
        self.net = self.net.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.model: nn.Module = self.net
        if ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self.loss_fn = build_loss(config, ctx.distributed)
        self.optimizer = torch.optim.SGD(
            self.net.parameters(), lr=config["lr"], momentum=config["momentum"],
            weight_decay=config["weight_decay"],
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=config["milestones"], gamma=self.lr_gamma
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config["amp"] == "fp16")
        self.iteration, self.last_lr, self.meters = 0, config["lr"], Meters()
        self.best_val, self.best_iteration, self.test_at_best_val = -1.0, 0, None

    def setup_data(self, data: dict[str, Split]) -> None:
        train, n = data["train"], self.config["train_size"]
        self.train = Split(train.paths[:n], train.labels[:n], train.sources[:n])
        self.val, self.test = data["val"], data["test"]

    def build_net(self) -> nn.Module:
        net = resnet50(NUM_CLASSES, width=self.config["width"])
        if self.config["pretrained"] is not None:
            load_pretrained(net, self.config["pretrained"])
        return net

    def train_batches(self) -> torch.utils.data.Dataset:
        return TrainBatches(self.train, self.config, self.ctx.rank, self.world)

    def final_result(self) -> dict[str, Any]:
        return {
            "test_acc_final": self.accuracy(self.test), "val_acc_best": self.best_val,
            "best_iteration": self.best_iteration, "test_acc_at_best_val": self.test_at_best_val,
        }  # fmt: skip

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.device).float() / 255.0 - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)

    def autocast(self) -> Any:
        import contextlib

        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "iteration": self.iteration,
            "config": {k: self.config[k] for k in self.result_settings}, "world_size": self.world,
            "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rng_states(), "meters": vars(self.meters).copy(),
            "best": {"val": self.best_val, "iteration": self.best_iteration,
                     "test": -1.0 if self.test_at_best_val is None else self.test_at_best_val},
        }  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}"
            )
        differ = settings_differences(state["config"], self.config, self.result_settings)
        if differ:
            raise CheckpointError(
                f"cannot resume {self.run_dir}: settings differ from the checkpoint "
                f"({', '.join(differ)}); use --overwrite to start again or another --run-name"
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        self.meters = Meters(**state["meters"])
        best = state["best"]
        self.best_val, self.best_iteration = best["val"], best["iteration"]
        self.test_at_best_val = None if best["test"] < 0 else best["test"]
        self.iteration = state["iteration"]

    def log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if not self.progress:
                print(json.dumps(record), flush=True)

    def truncate_log(self) -> None:
        path = self.run_dir / "log.jsonl"
        if not self.ctx.is_main or not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") != "final" and record["iteration"] <= self.iteration:
                kept.append(line + "\n")
        atomic_write_bytes(path, lambda f: f.write("".join(kept).encode()))

    def save_checkpoint(self) -> None:
        if self.ctx.is_main:
            state = self.state()
            atomic_write_bytes(self.run_dir / "checkpoint.pt", lambda f: torch.save(state, f))

    @torch.no_grad()
    def accuracy(self, split: Split) -> float:
        if self.ctx.distributed:
            for buffer in self.net.buffers():
                dist.broadcast(buffer, src=0)
        self.net.eval()
        own = range(self.ctx.rank, len(split), self.world)
        data = EvalImages(split, own, self.config["resize"], self.config["crop"])
        loader = torch.utils.data.DataLoader(
            data, batch_size=self.config["eval_batch_size"], num_workers=self.config["workers"]
        )
        correct = 0.0
        for images, labels in loader:
            with self.autocast():
                predicted = self.net(self.normalize(images)).argmax(1)
            correct += float((predicted.cpu() == labels).sum())
        (total,) = self.ctx.all_reduce_sum([correct])
        return 100.0 * total / len(split)

    def evaluate(self) -> dict[str, Any]:
        val, test = self.accuracy(self.val), self.accuracy(self.test)
        if val > self.best_val:
            self.best_val, self.best_iteration, self.test_at_best_val = val, self.iteration, test
        return {"iteration": self.iteration, "val_acc": val, "test_acc": test}

    def run(self, resume: bool, halt_after: int | None) -> dict[str, Any]:
        cfg = self.config
        checkpoint = self.run_dir / "checkpoint.pt"
        if resume and checkpoint.exists():
            self.load_state(load_checkpoint(checkpoint, self.device))
        self.truncate_log()
        self.ctx.barrier()
        total = cfg["iterations"]
        batches = self.train_batches()
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, sampler=range(self.iteration, total),
            num_workers=cfg["workers"], pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        bar = _progress_bar(self.iteration, total, cfg["run_name"]) if self.progress else None
        loss_sum, correct, count, steps = 0.0, 0.0, 0.0, 0
        for images, labels in loader:
            if halt_after is not None and steps >= halt_after:
                raise SimulatedKill(f"halted after {steps} iterations")
            x, y = self.normalize(images), labels.to(self.device)
            self.model.train()
            with self.autocast():
                logits = self.model(x)
            loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.last_lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            self.iteration += 1
            steps += 1
            self.meters.loss_sum += float(loss.detach()) * len(y)
            self.meters.correct += float((logits.argmax(1) == y).sum())
            self.meters.count += len(y)
            if bar is not None:
                bar.update(1)
            it = self.iteration
            if it % cfg["log_every"] == 0 or it == total:
                loss_sum, correct, count = self.ctx.all_reduce_sum(
                    [self.meters.loss_sum, self.meters.correct, self.meters.count]
                )
                record = {"iteration": it, "epoch": it / cfg["steps_per_epoch"],
                          "lr": self.last_lr, "loss": loss_sum / count,
                          "train_acc_noisy": 100.0 * correct / count}  # fmt: skip
                self.meters = Meters()
                if not math.isfinite(record["loss"]):
                    raise FloatingPointError(f"loss is {record['loss']} at iteration {it}")
                self.log(record)
            if it % cfg["eval_every"] == 0 or it == total:
                self.log(self.evaluate())
            if it % cfg["checkpoint_every"] == 0 or it == total:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        result = {"run_name": cfg["run_name"], "iterations": self.iteration, **self.final_result()}
        self.log({"event": "final", **result})
        if self.ctx.is_main:
            save_json(self.run_dir / "final.json", result)
        self.ctx.barrier()
        return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def describe(data: dict[str, Any]) -> dict[str, Any]:
        return {"experiment": "clothing1m", "val_size": len(data["val"]),
                "test_size": len(data["test"])}  # fmt: skip

    return run_experiment(
        args,
        Trainer,
        lambda: load_clothing1m(args.data_dir),
        lambda args, data: resolve_config(args, len(data["train"])),
        describe,
    )


def run_experiment(
    args: argparse.Namespace,
    trainer_class: type[Trainer],
    load: Any,
    resolve: Any,
    describe: Any,
) -> int:
    """One run of a real-noise experiment (this one or MARS): data, run directory, training.

    ``load()`` reads the data, ``resolve(args, data)`` makes the run's config and
    ``describe(data)`` adds what config.json records about the data.
    """
    ctx = setup_context(args.device)
    try:
        data = load()
        config = resolve(args, data)
        torch.backends.cudnn.benchmark = True
        # With --resume, refuses settings that differ from the saved run before writing anything.
        run_dir = prepare_run_dir(config, ctx, trainer_class.result_settings, None)
        if run_dir is None:
            print(f"{Path(config['out_dir']) / config['run_name']} is finished; skipped")
            return 0
        trainer = trainer_class(config, ctx, data)
        if ctx.is_main:
            save_json(run_dir / "config.json", {
                **config, **describe(data), "world_size": ctx.world_size,
                "loss_module": repr(trainer.loss_fn), "torch_version": torch.__version__,
                "emphasis_version": emphasis.__version__, "started": time.time(),
            })  # fmt: skip
        result = trainer.run(config["resume"], args.halt_after)
        if ctx.is_main and config["progress"]:
            print(json.dumps(result), flush=True)
        ctx.barrier()
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

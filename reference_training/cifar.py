"""Read CIFAR-10 and CIFAR-100 from the standard *binary* distribution, without unpickling anything.

The binary version of CIFAR (https://www.cs.toronto.edu/~kriz/cifar.html) is a flat sequence of
fixed-size records::

    CIFAR-10   cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin
               record = 1 label byte (0..9) + 3072 pixel bytes                 (3073 bytes)
    CIFAR-100  cifar-100-binary/train.bin, test.bin
               record = 1 coarse label byte (0..19) + 1 fine label byte (0..99)
                        + 3072 pixel bytes                                       (3074 bytes)

The 3072 pixel bytes are the red, green and blue planes of a 32x32 image, each 1024 bytes in
row-major order, so a record's pixels reshape directly to (3, 32, 32). The files are parsed with
:func:`numpy.frombuffer`; the "python version" of CIFAR (pickled dictionaries) is refused, since
unpickling a file runs whatever code it contains.

``root`` may be the directory holding the ``.bin`` files, its parent (holding
``cifar-10-batches-bin`` / ``cifar-100-binary``), or a directory holding the unextracted archive
(``cifar-10-binary.tar.gz`` / ``cifar-100-binary.tar.gz``), which is read member by member in
memory without extracting anything.

No file is read that is larger than its counterpart in the real distribution (CIFAR-10: 10000
records per batch; CIFAR-100: 50000 in train.bin, 10000 in test.bin): an archive member is
refused by its declared size before it is inflated. A truncated or corrupt archive, and an
archive with two members of the name of one of the files, are refused naming the archive.

Also a writer of *synthetic* data in the same format (class-dependent patterns a ResNet learns in
a few hundred iterations), to check the whole pipeline on a machine without CIFAR::

    python -m reference_training.cifar --write-synthetic /tmp/fake --dataset cifar10
"""

from __future__ import annotations

import argparse
import lzma
import os
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SHAPE = (3, 32, 32)
PIXEL_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarFormat:
    """Where a CIFAR binary distribution keeps its files and how its records are laid out."""

    name: str
    directory: str  # the directory the archive extracts to
    archive: str  # the archive's file name
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_bytes: int  # label bytes before the pixels of each record
    label_index: int  # which label byte is the class (CIFAR-100: 1 = fine label)
    label_limits: tuple[int, ...]  # exclusive upper bound of each label byte
    num_classes: int
    train_records: int  # records in each training file of the real distribution
    test_records: int  # records in each test file of the real distribution

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + PIXEL_BYTES

    def max_records(self, name: str) -> int:
        """The records in file ``name`` of the real distribution: no file read may hold more."""
        return self.train_records if name in self.train_files else self.test_records


FORMATS: dict[str, CifarFormat] = {
    "cifar10": CifarFormat(
        name="cifar10",
        directory="cifar-10-batches-bin",
        archive="cifar-10-binary.tar.gz",
        train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test_files=("test_batch.bin",),
        label_bytes=1,
        label_index=0,
        label_limits=(10,),
        num_classes=10,
        train_records=10000,
        test_records=10000,
    ),
    "cifar100": CifarFormat(
        name="cifar100",
        directory="cifar-100-binary",
        archive="cifar-100-binary.tar.gz",
        train_files=("train.bin",),
        test_files=("test.bin",),
        label_bytes=2,
        label_index=1,
        label_limits=(20, 100),
        num_classes=100,
        train_records=50000,
        test_records=10000,
    ),
}

#: Directories of the pickled "python version", which this module refuses to read.
PICKLED_DIRECTORIES = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class CifarFormatError(ValueError):
    """A file is missing or is not in the CIFAR binary format."""


#: What reading a truncated or corrupt compressed archive raises (gzip, bzip2, xz, tar).
ARCHIVE_ERRORS = (EOFError, OSError, tarfile.TarError, zlib.error, lzma.LZMAError)


def _check_size(size: int, name: str, fmt: CifarFormat, source: str) -> None:
    """Refuse, before reading it, a file larger than ``name`` of the real distribution."""
    records = fmt.max_records(name)
    limit = records * fmt.record_bytes
    if size > limit:
        raise CifarFormatError(
            f"{source}: {size} bytes, more than the {limit} bytes of {name} in {fmt.name} "
            f"({records} records of {fmt.record_bytes} bytes); not read"
        )


@dataclass(frozen=True)
class CifarSplit:
    """One split of CIFAR.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8`` of shape ``(N, 3, 32, 32)`` (channels first, as stored).
    labels : numpy.ndarray
        ``int64`` of shape ``(N,)``; the fine label for CIFAR-100.
    num_classes : int
        10 or 100.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def parse_records(data: bytes, fmt: CifarFormat, source: str) -> CifarSplit:
    """Parse the bytes of one binary CIFAR file.

    Raises :class:`CifarFormatError` naming ``source`` when the size is not a positive multiple of
    the record size or a label byte is out of range.
    """
    size = len(data)
    record = fmt.record_bytes
    layout = (
        "1 label byte + 3072 pixel bytes"
        if fmt.label_bytes == 1
        else "1 coarse label byte + 1 fine label byte + 3072 pixel bytes"
    )
    if size == 0 or size % record:
        raise CifarFormatError(
            f"{source}: {size} bytes is not a positive multiple of the {record}-byte "
            f"{fmt.name} record ({layout}); is this the binary version of {fmt.name}?"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    for byte, limit in enumerate(fmt.label_limits):
        column = rows[:, byte]
        bad = np.flatnonzero(column >= limit)
        if bad.size:
            which = ("label", "coarse label", "fine label")[byte + fmt.label_bytes - 1]
            raise CifarFormatError(
                f"{source}: record {int(bad[0])} has {which} byte {int(column[bad[0]])}, "
                f"expected 0..{limit - 1} ({fmt.name} record: {layout})"
            )
    images = rows[:, fmt.label_bytes :].reshape(-1, *IMAGE_SHAPE).copy()
    labels = rows[:, fmt.label_index].astype(np.int64)
    return CifarSplit(images=images, labels=labels, num_classes=fmt.num_classes)


def _concatenate(parts: list[CifarSplit]) -> CifarSplit:
    return CifarSplit(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        num_classes=parts[0].num_classes,
    )


def _read_from_directory(directory: Path, names: Sequence[str], fmt: CifarFormat) -> CifarSplit:
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise CifarFormatError(
            f"{directory}: missing {', '.join(missing)} (the binary version of {fmt.name} has "
            f"{', '.join(fmt.train_files + fmt.test_files)})"
        )
    for n in names:
        _check_size((directory / n).stat().st_size, n, fmt, str(directory / n))
    return _concatenate(
        [parse_records((directory / n).read_bytes(), fmt, str(directory / n)) for n in names]
    )


def _members_by_name(
    tar: tarfile.TarFile, archive: Path, fmt: CifarFormat
) -> dict[str, tarfile.TarInfo]:
    """The archive's regular files by base name; refuses an archive where two members have the
    base name of one of ``fmt``'s files (which one is read would be a matter of order)."""
    members: dict[str, list[tarfile.TarInfo]] = {}
    listed = tar.getmembers()
    # Read past the end-of-archive marker to the end of the (compressed) stream, in blocks: a
    # truncated gzip/bzip2/xz stream or a bad gzip checksum raises here, not never.
    assert tar.fileobj is not None
    while tar.fileobj.read(1 << 20):
        pass
    for member in listed:
        if member.isfile():
            members.setdefault(Path(member.name).name, []).append(member)
    for name in fmt.train_files + fmt.test_files:
        if len(members.get(name, [])) > 1:
            raise CifarFormatError(
                f"{archive}: ambiguous archive, {len(members[name])} members are named {name} "
                f"({', '.join(m.name for m in members[name])}); expected one "
                f"({fmt.directory}/{name}): remove the others or use the official archive"
            )
    return {name: found[0] for name, found in members.items()}


def _truncated(archive: Path, error: BaseException) -> CifarFormatError:
    return CifarFormatError(
        f"{archive}: the archive is truncated or corrupt ({type(error).__name__}: {error}); "
        "download it again"
    )


def _read_from_archive(archive: Path, names: Sequence[str], fmt: CifarFormat) -> CifarSplit:
    parts = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _members_by_name(tar, archive, fmt)
            for name in names:
                member = members.get(name)
                if member is None:
                    raise CifarFormatError(f"{archive}: has no member named {name}")
                source = f"{archive}:{member.name}"
                _check_size(member.size, name, fmt, source)  # before inflating it
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has a stream
                parts.append(parse_records(handle.read(), fmt, source))
    except ARCHIVE_ERRORS as error:
        raise _truncated(archive, error) from None
    return _concatenate(parts)


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except ARCHIVE_ERRORS as error:
        raise _truncated(path, error) from None


def locate(root: str | os.PathLike[str], dataset: str) -> Path:
    """Find the directory (or archive) of ``dataset``'s binary files under ``root``."""
    fmt = _format(dataset)
    root = Path(root)
    candidates = [root, root / fmt.directory]
    for candidate in candidates:
        if (candidate / fmt.test_files[0]).is_file():
            return candidate
    for archive in (root / fmt.archive, root):
        if archive.is_file() and _is_archive(archive):
            return archive
    if (root / fmt.archive).is_file():
        raise CifarFormatError(
            f"{root / fmt.archive}: the archive is truncated or corrupt (not a readable tar "
            "archive); download it again"
        )
    # root may be the pickled version's directory itself: name it once, not inside itself.
    pickled = (
        root if root.name == PICKLED_DIRECTORIES[dataset] else root / PICKLED_DIRECTORIES[dataset]
    )
    hint = (
        f" Found {pickled}, the pickled python version, which is not read (unpickling runs "
        f"arbitrary code): use the binary version instead."
        if pickled.exists()
        else ""
    )
    raise CifarFormatError(
        f"no binary {dataset} under {root}: expected {fmt.directory}/ (or {fmt.archive}) "
        f"holding {', '.join(fmt.train_files + fmt.test_files)}.{hint}"
    )


def _format(dataset: str) -> CifarFormat:
    try:
        return FORMATS[dataset]
    except KeyError:
        raise ValueError(f"dataset must be one of {sorted(FORMATS)}, got {dataset!r}") from None


def load_split(root: str | os.PathLike[str], dataset: str, train: bool) -> CifarSplit:
    """Read the training or test split of ``dataset`` ("cifar10" or "cifar100") from ``root``.

    Examples
    --------
    >>> train = load_split("~/data", "cifar10", train=True)  # doctest: +SKIP
    >>> train.images.shape, train.labels.shape  # doctest: +SKIP
    ((50000, 3, 32, 32), (50000,))
    """
    fmt = _format(dataset)
    names = fmt.train_files if train else fmt.test_files
    where = locate(Path(root).expanduser(), dataset)
    if where.is_file():
        return _read_from_archive(where, names, fmt)
    return _read_from_directory(where, names, fmt)


def load_cifar(root: str | os.PathLike[str], dataset: str) -> tuple[CifarSplit, CifarSplit]:
    """``(train, test)`` splits of ``dataset`` read from ``root``."""
    return load_split(root, dataset, train=True), load_split(root, dataset, train=False)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``uint8`` images ``(N, 3, H, W)``, in [0, 1]."""
    pixels = images.astype(np.float64) / 255.0
    return pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))


# ---------------------------------------------------------------------------
# writing files in the same format (synthetic data for smoke tests)
# ---------------------------------------------------------------------------


def encode_records(
    images: np.ndarray, labels: np.ndarray, coarse_labels: np.ndarray | None = None
) -> bytes:
    """Bytes of CIFAR binary records: ``[coarse] label, 3072 pixels`` per image.

    ``images`` is ``uint8`` of shape ``(N, 3, 32, 32)``; pass ``coarse_labels`` for CIFAR-100.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"images must be uint8 of shape (N, 3, 32, 32), got {images.dtype} {images.shape}"
        )
    columns = [np.asarray(labels, dtype=np.uint8)[:, None]]
    if coarse_labels is not None:
        columns.insert(0, np.asarray(coarse_labels, dtype=np.uint8)[:, None])
    columns.append(images.reshape(len(images), PIXEL_BYTES))
    return np.concatenate(columns, axis=1).tobytes()


def write_synthetic(
    root: str | os.PathLike[str],
    dataset: str,
    train_size: int = 1000,
    test_size: int = 200,
    seed: int = 0,
) -> Path:
    """Write a small learnable data set in ``dataset``'s binary layout under ``root``.

    Each class is a fixed random pattern of 4x4 coloured blocks; an image is its class pattern
    plus Gaussian noise (standard deviation 48 grey levels). The training examples are spread
    over the same files as the real distribution. Returns the directory written
    (``root/cifar-10-batches-bin`` or ``root/cifar-100-binary``).
    """
    fmt = _format(dataset)
    # The reader refuses an empty file and a file larger than the real one's: so must the writer.
    for what, size, names in (
        ("train", train_size, fmt.train_files),
        ("test", test_size, fmt.test_files),
    ):
        most = len(names) * fmt.max_records(names[0])
        if not (isinstance(size, (int, np.integer)) and len(names) <= size <= most):
            raise ValueError(
                f"{what}_size (--{what}-size) must be an integer in [{len(names)}, {most}] for "
                f"{dataset}: its {len(names)} {what} file(s) need at least one image each and "
                f"hold at most {fmt.max_records(names[0])} each, got {size!r}"
            )
    rng = np.random.default_rng(seed)
    # Coarse patterns (4x4 blocks of 8x8 pixels), so that a class survives the 4-pixel shifts and
    # the flips of the augmentation.
    coarse = rng.integers(0, 256, size=(fmt.num_classes, 3, 4, 4)).astype(np.float64)
    patterns = coarse.repeat(8, axis=2).repeat(8, axis=3)
    directory = Path(root) / fmt.directory
    directory.mkdir(parents=True, exist_ok=True)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, fmt.num_classes, size=n)
        noise = rng.normal(0.0, 48.0, size=(n, *IMAGE_SHAPE))
        images = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels

    for names, size in ((fmt.train_files, train_size), (fmt.test_files, test_size)):
        images, labels = sample(size)
        for name, chunk in zip(names, np.array_split(np.arange(size), len(names)), strict=True):
            superclass = labels[chunk] % 20 if fmt.label_bytes == 2 else None
            (directory / name).write_bytes(encode_records(images[chunk], labels[chunk], superclass))
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write-synthetic",
        metavar="DIR",
        required=True,
        help="write a synthetic data set in the CIFAR binary format under DIR",
    )
    parser.add_argument("--dataset", choices=sorted(FORMATS), default="cifar10")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        where = write_synthetic(
            args.write_synthetic, args.dataset, args.train_size, args.test_size, args.seed
        )
    except ValueError as error:
        parser.error(str(error))
    print(
        f"wrote synthetic {args.dataset} ({args.train_size} train, {args.test_size} test) to {where}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

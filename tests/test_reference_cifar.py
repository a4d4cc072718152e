"""The CIFAR reference scripts, end to end, on tiny files in the CIFAR binary format (CPU, seconds).

What is checked: the reader parses the binary layout (label byte(s), then the red, green and blue
planes row by row) from a directory or the unextracted archive and refuses malformed files with
an error naming the file; the ResNets have He et al.'s parameter counts; the data order and the
augmentation are functions of the seed; a training run writes its config, log, checkpoint and
results; a run killed and resumed ends bit-identical to an uninterrupted one (weights, optimiser,
log, results); the tables put our mean ± std beside the paper's numbers; the commands that
--plan prints train exactly the settings of the table's cells.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from reference_training import cifar, tables

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# files written by hand in the documented layout (independent of cifar.encode_records)
# ---------------------------------------------------------------------------


def _record(labels: tuple[int, ...], image: np.ndarray) -> bytes:
    """One record: the label byte(s), then R, G, B planes of 32x32, each row by row."""
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8
    planes = b"".join(
        bytes(int(image[c, row, col]) for col in range(32)) for c in range(3) for row in range(32)
    )
    return bytes(labels) + planes


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 2, test: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Five training batches and a test batch; returns the training images and labels."""
    directory = root / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    images = _images(5 * per_batch + test, seed=1)
    labels = np.arange(len(images)) % 10
    for b in range(6):
        name = f"data_batch_{b + 1}.bin" if b < 5 else "test_batch.bin"
        rows = (
            range(b * per_batch, (b + 1) * per_batch)
            if b < 5
            else range(5 * per_batch, len(images))
        )
        (directory / name).write_bytes(b"".join(_record((labels[i],), images[i]) for i in rows))
    return images[: 5 * per_batch], labels[: 5 * per_batch]


def test_reader_parses_the_cifar10_binary_layout(tmp_path):
    images, labels = write_cifar10(tmp_path)
    train, test = cifar.load_cifar(tmp_path, "cifar10")
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.num_classes == 10
    np.testing.assert_array_equal(train.images, images)
    np.testing.assert_array_equal(train.labels, labels)  # batches concatenated in order 1..5
    assert len(test) == 3
    # the directory of .bin files itself works as root too
    again = cifar.load_split(tmp_path / "cifar-10-batches-bin", "cifar10", train=True)
    np.testing.assert_array_equal(again.images, images)


def test_reader_parses_cifar100_and_uses_the_fine_label(tmp_path):
    directory = tmp_path / "cifar-100-binary"
    directory.mkdir()
    images = _images(4, seed=2)
    coarse, fine = [19, 0, 7, 3], [99, 42, 0, 64]
    data = b"".join(_record((c, f), im) for c, f, im in zip(coarse, fine, images, strict=True))
    (directory / "train.bin").write_bytes(data)
    (directory / "test.bin").write_bytes(data[: 2 * 3074])
    train, test = cifar.load_cifar(tmp_path, "cifar100")
    np.testing.assert_array_equal(train.labels, fine)
    np.testing.assert_array_equal(train.images, images)
    assert train.num_classes == 100 and len(test) == 2


def test_reader_reads_the_unextracted_archive_without_extracting(tmp_path):
    source = tmp_path / "src"
    images, labels = write_cifar10(source)
    archive = tmp_path / "data" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    train = cifar.load_split(archive.parent, "cifar10", train=True)
    np.testing.assert_array_equal(train.images, images)
    np.testing.assert_array_equal(train.labels, labels)
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar-10-binary.tar.gz"]


def _archive(tmp_path: Path, *extra: tuple[str, bytes]) -> Path:
    """cifar-10-binary.tar.gz of write_cifar10's files, plus ``extra`` (name, bytes) members."""
    source = tmp_path / "src"
    write_cifar10(source)
    archive = tmp_path / "data" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        for name, data in extra:
            (source / "extra").write_bytes(data)
            tar.add(source / "extra", arcname=name)
    return archive


def test_reader_refuses_an_archive_with_two_members_of_one_name(tmp_path):
    other = _record((1,), _images(1, 9)[0]) * 4
    archive = _archive(tmp_path, ("zzz/test_batch.bin", other))
    message = (
        rf"{re.escape(str(archive))}: ambiguous archive, 2 members are named test_batch\.bin "
        r"\(cifar-10-batches-bin/test_batch\.bin, zzz/test_batch\.bin\)"
    )
    with pytest.raises(cifar.CifarFormatError, match=message):
        cifar.load_split(archive.parent, "cifar10", train=False)
    with pytest.raises(cifar.CifarFormatError, match=message):  # the whole archive is suspect
        cifar.load_split(archive.parent, "cifar10", train=True)
    # Other files of the same base name are no concern of the reader.
    archive = _archive(tmp_path / "again", ("a/readme.html", b"x"), ("b/readme.html", b"y"))
    assert len(cifar.load_split(archive.parent, "cifar10", train=False)) == 3


@pytest.mark.parametrize("keep", [0.5, 0.999, 40 / 10**6])
def test_reader_names_a_truncated_archive(tmp_path, keep):
    archive = _archive(tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: max(1, int(len(data) * keep))])
    message = rf"{re.escape(str(archive))}: the archive is truncated or corrupt"
    for train in (True, False):
        with pytest.raises(cifar.CifarFormatError, match=message):
            cifar.load_split(archive.parent, "cifar10", train=train)


def test_reader_refuses_a_member_larger_than_the_real_file_before_reading_it(tmp_path):
    import io
    import tracemalloc

    big = 10001 * 3073  # one record more than the real test_batch.bin (10000 x 3073 bytes)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = big
        tar.addfile(info, io.BytesIO(bytes(big)))
    message = (
        rf"{re.escape(str(archive))}:cifar-10-batches-bin/test_batch\.bin: {big} bytes, more "
        r"than the 30730000 bytes of test_batch\.bin in cifar10 \(10000 records of 3073 bytes\)"
    )
    tracemalloc.start()
    try:
        with pytest.raises(cifar.CifarFormatError, match=message):
            cifar.load_split(tmp_path, "cifar10", train=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # the member was never read into memory
    # The same cap for the extracted files (a sparse file: nothing to write).
    write_cifar10(tmp_path / "dir")
    path = tmp_path / "dir" / "cifar-10-batches-bin" / "data_batch_2.bin"
    with open(path, "r+b") as handle:
        handle.truncate(big)
    with pytest.raises(cifar.CifarFormatError, match=rf"data_batch_2\.bin: {big} bytes, more"):
        cifar.load_split(tmp_path / "dir", "cifar10", train=True)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "data_batch_3.bin").write_bytes(b"\x00" * 3072), r"data_batch_3\.bin: 3072 bytes is not a positive multiple of the 3073-byte"),
        (lambda d: (d / "data_batch_2.bin").write_bytes(b""), r"data_batch_2\.bin: 0 bytes"),
        (lambda d: (d / "data_batch_1.bin").write_bytes(_record((0,), _images(1, 0)[0]) + _record((10,), _images(1, 0)[0])),
         r"data_batch_1\.bin: record 1 has label byte 10, expected 0\.\.9"),
        (lambda d: (d / "data_batch_5.bin").unlink(), r"missing data_batch_5\.bin"),
    ],
    ids=["truncated", "empty", "label-out-of-range", "missing-batch"],
)  # fmt: skip
def test_reader_refuses_malformed_cifar10_files(tmp_path, damage, message):
    write_cifar10(tmp_path)
    damage(tmp_path / "cifar-10-batches-bin")
    with pytest.raises(cifar.CifarFormatError, match=message):
        cifar.load_split(tmp_path, "cifar10", train=True)


def test_reader_refuses_cifar100_records_with_bad_labels_or_size(tmp_path):
    directory = tmp_path / "cifar-100-binary"
    directory.mkdir()
    (directory / "test.bin").write_bytes(_record((20, 5), _images(1, 0)[0]))
    with pytest.raises(cifar.CifarFormatError, match=r"coarse label byte 20, expected 0\.\.19"):
        cifar.load_split(tmp_path, "cifar100", train=False)
    (directory / "test.bin").write_bytes(_record((3,), _images(1, 0)[0]))  # a CIFAR-10 record
    with pytest.raises(cifar.CifarFormatError, match="3074-byte cifar100 record"):
        cifar.load_split(tmp_path, "cifar100", train=False)


def test_reader_refuses_the_pickled_python_version(tmp_path):
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    (pickled / "data_batch_1").write_bytes(b"\x80\x04not read")
    with pytest.raises(cifar.CifarFormatError, match="pickled python version, which is not read"):
        cifar.load_cifar(tmp_path, "cifar10")
    with pytest.raises(cifar.CifarFormatError, match="no binary cifar100 under"):
        cifar.load_cifar(tmp_path, "cifar100")
    with pytest.raises(ValueError, match="dataset must be one of"):
        cifar.load_cifar(tmp_path, "svhn")


def test_pickled_version_hint_names_the_directory_once(tmp_path):
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    with pytest.raises(cifar.CifarFormatError) as info:
        cifar.load_cifar(pickled, "cifar10")  # root is the pickled directory itself
    assert f"Found {pickled}, the pickled python version" in str(info.value)
    assert "cifar-10-batches-py/cifar-10-batches-py" not in str(info.value)


def test_archive_of_the_right_name_that_is_no_tar_is_named(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"not a tar archive, but long enough" * 20)
    with pytest.raises(
        cifar.CifarFormatError,
        match=r"cifar-10-binary\.tar\.gz: the archive is truncated or corrupt \(not a",
    ):
        cifar.load_cifar(tmp_path, "cifar10")


@pytest.mark.parametrize(
    ("dataset", "argv", "message"),
    [
        ("cifar10", ["--train-size", "3"], r"train_size \(--train-size\) must be an integer in \[5, 50000\] for cifar10.*got 3"),
        ("cifar10", ["--test-size", "0"], r"test_size \(--test-size\) must be an integer in \[1, 10000\]"),
        ("cifar10", ["--train-size", "50001"], r"in \[5, 50000\].*got 50001"),
        ("cifar100", ["--test-size", "10001"], r"test_size .* in \[1, 10000\] for cifar100"),
        ("cifar100", ["--train-size", "-1"], r"train_size .* in \[1, 50000\] for cifar100"),
    ],
    ids=["cifar10-train-3", "cifar10-test-0", "cifar10-train-50001", "cifar100-test-10001",
         "cifar100-train-negative"],
)  # fmt: skip
def test_synthetic_writer_refuses_sizes_the_reader_would_refuse(
    tmp_path, capsys, dataset, argv, message
):
    with pytest.raises(SystemExit) as info:
        cifar.main(["--write-synthetic", str(tmp_path / "d"), "--dataset", dataset, *argv])
    assert info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "d").exists()  # nothing written
    # The smallest sizes it accepts, the reader reads.
    cifar.main(["--write-synthetic", str(tmp_path / "d"), "--dataset", dataset,
                "--train-size", "5" if dataset == "cifar10" else "1", "--test-size", "1"])  # fmt: skip
    train, test = cifar.load_cifar(tmp_path / "d", dataset)
    assert (len(train), len(test)) == ((5, 1) if dataset == "cifar10" else (1, 1))


def test_synthetic_writer_round_trips_through_the_reader(tmp_path):
    cifar.write_synthetic(tmp_path, "cifar100", train_size=30, test_size=7, seed=3)
    train, test = cifar.load_cifar(tmp_path, "cifar100")
    assert (len(train), len(test)) == (30, 7)
    assert train.labels.max() < 100
    encoded = cifar.encode_records(train.images[:1], train.labels[:1], train.labels[:1] % 20)
    assert encoded == _record((int(train.labels[0] % 20), int(train.labels[0])), train.images[0])


# ---------------------------------------------------------------------------
# tables (no torch needed)
# ---------------------------------------------------------------------------


def _fake_run(root: Path, name: str, result: dict | None, **config) -> None:
    base = dict(schedule="released", dataset="cifar100", depth=44, noise_rate=0.4, loss="gr",
                beta=8.0, lam=0.5, q=None, eps=1e-6, transform="exp", normalize=True, seed=0)  # fmt: skip
    base.update(config)
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(base))
    if result is not None:
        (root / name / "final.json").write_text(json.dumps(result))


def _result(final: float, best: float | None = None) -> dict:
    return {"test_acc_final": final, "test_acc_best": best or final,
            "train_acc_noisy": 50.0, "train_acc_intact": 70.0}  # fmt: skip


def test_tables_show_mean_and_std_over_seeds_beside_the_paper(tmp_path):
    finals = [58.0, 59.0, 60.5]
    for seed, acc in enumerate(finals):
        _fake_run(tmp_path, f"gr{seed}", _result(acc), seed=seed)
    _fake_run(tmp_path, "cce", _result(40.0), loss="cce", beta=None, lam=None, seed=0)
    _fake_run(tmp_path, "eps0", _result(1.0), eps=0.0)  # not the paper's GR: only in "All runs"
    _fake_run(tmp_path, "running", None, seed=9)
    runs, unfinished = tables.read_runs(tmp_path)
    assert len(runs) == 5 and [p.name for p in unfinished] == ["running"]
    text = tables.render(runs, unfinished)

    expected = f"{statistics.fmean(finals):.1f} ± {statistics.stdev(finals):.1f} (3)"
    row = next(line for line in text.splitlines() if line.startswith("| 40% |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Noise | CCE ours | paper | GCE ours | paper | GR(8, 0.5) ours | paper | tuned ours | paper
    assert cells == ["40%", "40.0 (1)", "42.9 ± 0.2", "—", "47.0 ± 0.2", expected, "59.3 ± 0.2",
                     "—", "60.0 ± 0.1 (6, 0.4)"]  # fmt: skip
    # only the paper tables that some run fills are shown
    assert "### Table 5" in text and "### Table 2" not in text and "### Table 3" not in text
    assert "schedule `released`" in text and "schedule `paper`" not in text
    assert "GR (β=8, λ=0.5, eps=0) | 1 | 1.0 (1)" in text
    assert "1 unfinished run(s) left out: running" in text


def test_table3_gr_beta0_matches_any_lambda_and_reports_four_metrics(tmp_path):
    for seed, lam in enumerate([0.0, 2.0]):
        _fake_run(tmp_path, f"b0_{seed}", _result(60.0 + seed, best=80.0), schedule="paper",
                  dataset="cifar10", depth=56, noise_rate=0.2, beta=0.0, lam=lam, seed=seed)  # fmt: skip
    text = tables.render(*tables.read_runs(tmp_path))
    row = next(line for line in text.splitlines() if "| 20% | None |" in line)
    assert row.startswith(
        "| 20% | None | GR (β=0) | 80.0 ± 0.0 (2) | 83.5 | 60.5 ± 0.7 (2) | 58.1 |"
    )
    assert "50.0 ± 0.0 (2) | 50.6 | 70.0 ± 0.0 (2) | 60.2 |" in row
    # a cell without runs: the paper's row for r = 60%, lambda = 2
    assert "| 60% | 0.5~1 | GR (λ=2, β=12) | — | 80.2 | — | 72.5 | — | 44.9 | — | 75.4 |" in text


def _relabel_result(final: float, source: str, gain: float, relabelled: int, right: float):
    return {**_result(final), "relabel": {"source_run": source, "gain": gain,
            "relabelled": relabelled, "relabelled_acc": right}}  # fmt: skip


def test_table9_shows_fitting_degrees_and_the_retrained_runs_beside_the_paper(tmp_path):
    table3 = dict(schedule="paper", dataset="cifar10", depth=56, noise_rate=0.4, beta=16.0,
                  lam=1.0, train_size=1000)  # fmt: skip
    for seed, (final, clean, noisy) in enumerate([(80.0, 94.0, 8.0), (82.0, 96.0, 6.0)]):
        result = {**_result(final, best=85.0), "fit_clean": clean, "fit_noisy": noisy}
        _fake_run(tmp_path, f"gr{seed}", result, **table3, seed=seed)
        again = _relabel_result(final + 1.0 + seed, f"gr{seed}", 1.0 + seed, 100 + 20 * seed, 90.0)
        _fake_run(tmp_path, f"gr{seed}_relabel", again, **table3, seed=seed,
                  relabel_source=f"gr{seed}", relabel_rate=None)  # fmt: skip
    # a relabelled run with a given rate: only in "All runs", not in Table 9
    _fake_run(tmp_path, "gr0_relabel0.5", _relabel_result(10.0, "gr0", -70.0, 500, 10.0),
              **table3, seed=0, relabel_source="gr0", relabel_rate=0.5)  # fmt: skip
    # a CCE run from before the fitting degrees were recorded
    _fake_run(tmp_path, "cce", _result(60.0), **{**table3, "loss": "cce", "beta": None,
              "lam": None})  # fmt: skip
    text = tables.render(*tables.read_runs(tmp_path))
    assert "### Table 9: label correction, CIFAR-10, ResNet-56 (%) — schedule `paper`" in text
    assert "Is it plausible to correct the labels of training data?" in text
    table9 = text.split("### Table 9", 1)[1].split("###", 1)[0]
    row = next(line for line in table9.splitlines() if line.startswith("| 40% | 0.5 | GR (λ=1"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["40%", "0.5", "GR (λ=1, β=16)",
                     "85.0 ± 0.0 (2)", "84.7", "81.0 ± 1.4 (2)", "83.3", "50.0 ± 0.0 (2)", "60.3",
                     "70.0 ± 0.0 (2)", "88.9", "95.0 ± 1.4 (2)", "94.8", "7.0 ± 1.4 (2)", "7.5",
                     "82.5 ± 2.1 (2)", "1.5 ± 0.7 (2)", "85.3 (+2)", "11.0 ± 1.4 (2)",
                     "90.0 ± 0.0 (2)"]  # fmt: skip
    cce = next(line for line in table9.splitlines() if line.startswith("| 40% | 0 | CCE"))
    assert cce.startswith("| 40% | 0 | CCE | 60.0 (1) | 82.8 | 60.0 (1) | 60.9 |")
    assert "| — | 97.0 | — | 81.1 | — | — | — | — | — |" in cce  # no fit, no relabelled run
    assert "| 20% | 0~0.5 | GR (λ=0.5, β=12) | — | 89.4 |" in table9
    # relabelled runs are not Table 3's runs
    table3_part = text.split("### Table 3", 1)[1].split("###", 1)[0]
    row3 = next(line for line in table3_part.splitlines() if line.startswith("| 40% | 0.5 |"))
    assert row3.startswith("| 40% | 0.5 | GR (λ=1, β=16) | 85.0 ± 0.0 (2) | 84.7 | 81.0 ± 1.4 (2)")
    assert "GR (β=16, λ=1), relabelled | 2 |" in text
    assert "GR (β=16, λ=1), relabelled (rate 0.5) | 1 |" in text


def test_tables_command_writes_markdown(tmp_path, capsys):
    _fake_run(tmp_path / "runs", "a", _result(50.0))
    out = tmp_path / "tables.md"
    assert tables.main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tables.read_runs(tmp_path / "nowhere")
    assert tables.main(["--plan", "2", "--data-dir", "/d", "--", "--amp", "bf16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and all(line.endswith("--resume --amp bf16") for line in lines)


# ---------------------------------------------------------------------------
# models and data pipeline (torch)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def train_cifar(torch):
    pytest.importorskip("emphasis_torch")
    from reference_training import train_cifar

    return train_cifar


def test_resnets_have_he_et_al_parameter_counts(torch):
    from reference_training.resnet_cifar import resnet_cifar

    # He et al. 2016, Table 6: 0.27M, 0.66M, 0.85M (option A shortcuts have no parameters)
    for depth, count in ((20, 269_722), (44, 658_586), (56, 853_018)):
        model = resnet_cifar(depth, 10)
        assert sum(p.numel() for p in model.parameters()) == count
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) + 1 == depth  # + the fully connected layer
    model = resnet_cifar(8, 100)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    for bad in (7, 9, 21, 2):
        with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
            resnet_cifar(bad, 10)


def test_crop_and_flip_matches_a_plain_loop(torch, train_cifar):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(_images(6, seed=4))
    rows, cols = (torch.from_numpy(rng.integers(0, 9, 6)) for _ in range(2))
    flips = torch.tensor([True, False, True, False, True, False])
    out = train_cifar.crop_and_flip(images, rows, cols, flips)
    for i in range(6):
        padded = torch.nn.functional.pad(images[i], (4, 4, 4, 4))
        window = padded[:, rows[i] : rows[i] + 32, cols[i] : cols[i] + 32]
        assert torch.equal(out[i], window.flip(-1) if flips[i] else window)


def test_data_order_and_augmentation_are_functions_of_the_seed(train_cifar):
    size, batch = 50, 8  # 6 full batches per epoch, the last 2 examples are dropped
    epoch0 = np.concatenate([train_cifar.global_batch(3, i, size, batch) for i in range(6)])
    assert len(set(epoch0.tolist())) == 48
    np.testing.assert_array_equal(train_cifar.global_batch(3, 6, size, batch),
                                  train_cifar.epoch_permutation(3, 1, size)[:8])  # fmt: skip
    assert not np.array_equal(train_cifar.global_batch(4, 0, size, batch), epoch0[:8])
    a, b = train_cifar.augmentation(3, 17, batch), train_cifar.augmentation(3, 17, batch)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].min() >= 0 and a[0].max() <= 8


def test_schedules():
    pytest.importorskip("torch")
    from reference_training.train_cifar import resolve_schedule

    paper = resolve_schedule("paper")
    assert (paper.iterations, paper.milestones, paper.weight_decay) == (
        20000,
        (5000, 10000, 15000),
        1e-4,
    )
    assert resolve_schedule("paper", iterations=12000).milestones == (5000, 10000)
    released = resolve_schedule("released")
    assert (released.iterations, released.milestones, released.weight_decay) == (
        30000,
        (15000, 22000),
        5e-4,
    )
    assert resolve_schedule("released", weight_decay=0.0).weight_decay == 0.0
    with pytest.raises(ValueError, match="schedule must be"):
        resolve_schedule("cosine")


# ---------------------------------------------------------------------------
# training end to end
# ---------------------------------------------------------------------------

TINY = ["--depth", "8", "--batch-size", "4", "--log-every", "2", "--eval-every", "4",
        "--checkpoint-every", "5", "--eval-batch-size", "64", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def data10(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    cifar.write_synthetic(root, "cifar10", train_size=20, test_size=16, seed=0)
    return root


def _train(train_cifar, data, out, *extra):
    argv = ["--data-dir", str(data), "--out-dir", str(out), *TINY, *extra]
    return train_cifar.main(argv)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_training_run_writes_config_log_checkpoint_and_results(train_cifar, data10, tmp_path):
    import emphasis

    assert _train(train_cifar, data10, tmp_path, "--iterations", "6", "--noise-rate", "0.4",
                  "--loss", "gr", "--beta", "12", "--lam", "1", "--seed", "5",
                  "--run-name", "r") == 0  # fmt: skip
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["loss"] == "gr" and config["beta"] == 12.0 and config["q"] is None
    assert config["weight_decay"] == 1e-4 and config["milestones"] == []
    assert config["loss_module"].startswith("GRLoss(beta=12, lam=1")
    assert "global_batch" not in config["loss_module"]  # one process: the batch is global
    # the paper's symmetric noise, drawn from the noise seed
    labels = cifar.load_split(data10, "cifar10", train=True).labels
    noisy = emphasis.symmetric_noise(labels, 0.4, 10, seed=np.random.default_rng([5, 1]))
    assert config["realised_noise_rate"] == noisy.realised_rate > 0

    records = _records(run)
    train = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in train] == [2, 4, 6]
    assert all(np.isfinite(r["loss"]) and r["lr"] == 0.1 for r in train)
    assert [r["iteration"] for r in records if "test_acc" in r] == [4, 6]
    final = json.loads((run / "final.json").read_text())
    assert records[-1] == {"event": "final", **final}
    assert final["iterations"] == 6 and final["realised_noise_rate"] == noisy.realised_rate
    for key in ("test_acc_final", "test_acc_best", "train_acc_noisy", "train_acc_intact"):
        assert 0.0 <= final[key] <= 100.0
    assert final["test_acc_best"] >= final["test_acc_final"]
    state = train_cifar.load_checkpoint(run / "checkpoint.pt", train_cifar.torch.device("cpu"))
    assert state["iteration"] == 6  # safe to read: torch.load(weights_only=True)


def test_learning_rate_steps_at_the_milestones_counted_in_iterations(
    train_cifar, data10, tmp_path, monkeypatch
):
    schedule = train_cifar.Schedule("paper", iterations=6, milestones=(2, 4), weight_decay=1e-4)
    monkeypatch.setattr(train_cifar, "resolve_schedule", lambda *args: schedule)
    _train(train_cifar, data10, tmp_path, "--run-name", "lr")
    lrs = [r["lr"] for r in _records(tmp_path / "lr") if "lr" in r]
    # records at iterations 2, 4, 6 show the rate of their last step (steps 2, 4, 6 of 6)
    assert lrs == pytest.approx([0.1, 0.01, 0.001], rel=1e-12)


def _assert_same_run(train_cifar, a: Path, b: Path) -> None:
    torch = train_cifar.torch
    sa = train_cifar.load_checkpoint(a / "checkpoint.pt", torch.device("cpu"))
    sb = train_cifar.load_checkpoint(b / "checkpoint.pt", torch.device("cpu"))
    assert sa["iteration"] == sb["iteration"]
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key
    for pa, pb in zip(
        sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert sa["scheduler"] == sb["scheduler"]
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    assert json.loads((a / "final.json").read_text()) == json.loads((b / "final.json").read_text())


def test_killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    train_cifar, data10, tmp_path
):
    # 20 images / batch 4 = 5 iterations per epoch: 7 iterations cross an epoch boundary.
    common = ["--iterations", "7", "--checkpoint-every", "3", "--noise-rate", "0.2",
              "--loss", "gr", "--seed", "2"]  # fmt: skip
    _train(train_cifar, data10, tmp_path / "straight", *common)
    # Killed after 5 iterations: the checkpoint of iteration 3 survives, 4 and 5 are lost.
    with pytest.raises(train_cifar.SimulatedKill):
        _train(train_cifar, data10, tmp_path / "killed", *common, "--halt-after", "5")
    name = next((tmp_path / "killed").iterdir()).name
    killed = tmp_path / "killed" / name
    assert not (killed / "final.json").exists()
    assert train_cifar.load_checkpoint(killed / "checkpoint.pt", "cpu")["iteration"] == 3
    assert max(r["iteration"] for r in _records(killed)) == 4  # records after 3 are rewritten
    # Resume (mid-epoch) and finish.
    _train(train_cifar, data10, tmp_path / "killed", *common, "--resume")
    _assert_same_run(train_cifar, tmp_path / "straight" / name, killed)
    # A finished run is skipped by --resume; a second start without it is refused.
    before = (killed / "log.jsonl").read_text()
    _train(train_cifar, data10, tmp_path / "killed", *common, "--resume")
    assert (killed / "log.jsonl").read_text() == before
    with pytest.raises(FileExistsError, match="pass --resume"):
        _train(train_cifar, data10, tmp_path / "killed", *common)


def test_resume_refuses_a_checkpoint_with_other_settings(train_cifar, data10, tmp_path):
    common = ["--iterations", "6", "--run-name", "x"]
    with pytest.raises(train_cifar.SimulatedKill):
        _train(train_cifar, data10, tmp_path, *common, "--halt-after", "5")
    with pytest.raises(
        ValueError, match=r"settings differ from the checkpoint \(lr: 0.1 -> 0.05\)"
    ):
        _train(train_cifar, data10, tmp_path, *common, "--resume", "--lr", "0.05")


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (["--iterations", "8"], "iterations: 6 -> 8"),
        (["--lr", "0.05"], "lr: 0.1 -> 0.05"),
        (["--batch-size", "5"], "batch_size: 4 -> 5"),
    ],
    ids=["iterations", "lr", "batch-size"],
)
def test_resume_of_a_finished_run_with_other_settings_is_refused_writing_nothing(
    train_cifar, data10, tmp_path, change, difference
):
    common = ["--iterations", "6", "--run-name", "f"]
    _train(train_cifar, data10, tmp_path, *common)
    run = tmp_path / "f"
    before = _files(run)
    with pytest.raises(ValueError, match=rf"{re.escape(str(run))}: settings differ from the checkpoint "
                                         rf"\({difference}\)"):  # fmt: skip
        _train(train_cifar, data10, tmp_path, *common, *change, "--resume")
    assert _files(run) == before  # config.json (tables.py groups by it) and the rest untouched
    # Without its checkpoint, a finished run is compared with its config.json.
    (run / "checkpoint.pt").unlink()
    before = _files(run)
    with pytest.raises(ValueError, match=rf"config\.json \({difference}\)"):
        _train(train_cifar, data10, tmp_path, *common, *change, "--resume")
    assert _files(run) == before
    # The same settings: skipped, nothing written.
    assert _train(train_cifar, data10, tmp_path, *common, "--resume") == 0
    assert _files(run) == before


def test_refused_resume_of_an_unfinished_run_leaves_config_json_untouched(
    train_cifar, data10, tmp_path
):
    common = ["--iterations", "6", "--run-name", "u"]
    with pytest.raises(train_cifar.SimulatedKill):
        _train(train_cifar, data10, tmp_path, *common, "--halt-after", "5")
    run = tmp_path / "u"
    before = _files(run)
    with pytest.raises(ValueError, match=r"\(iterations: 6 -> 9, lr: 0.1 -> 0.05\)"):
        _train(train_cifar, data10, tmp_path, *common, "--resume", "--lr", "0.05",
               "--iterations", "9")  # fmt: skip
    assert _files(run) == before


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_unreadable_checkpoint_is_refused_naming_its_path_and_the_way_out(
    train_cifar, data10, tmp_path, damage
):
    common = ["--iterations", "6", "--run-name", "c"]
    with pytest.raises(train_cifar.SimulatedKill):
        _train(train_cifar, data10, tmp_path, *common, "--halt-after", "5")
    path = tmp_path / "c" / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    what = "is empty" if damage == "empty" else "is truncated or corrupt"
    message = rf"{re.escape(str(path))} {what}.*delete it to restart the run"
    with pytest.raises(train_cifar.CheckpointError, match=message):
        train_cifar.load_checkpoint(path, "cpu")
    before = _files(tmp_path / "c")
    with pytest.raises(train_cifar.CheckpointError, match=message):
        _train(train_cifar, data10, tmp_path, *common, "--resume")
    assert _files(tmp_path / "c") == before
    # Deleting it restarts the run from the beginning.
    path.unlink()
    assert _train(train_cifar, data10, tmp_path, *common, "--resume") == 0
    assert json.loads((tmp_path / "c" / "final.json").read_text())["iterations"] == 6


@pytest.mark.slow
def test_sigkill_then_resume_from_the_command_line(train_cifar, data10, tmp_path):
    """A real SIGKILL of the script (run as a file), then --resume: same weights as straight."""
    common = ["--data-dir", str(data10), *TINY, "--iterations", "6", "--checkpoint-every", "1",
              "--seed", "7", "--run-name", "k"]  # fmt: skip
    # No PYTHONPATH: the script makes `reference_training` importable itself. The same thread
    # count as this process, for the same floating-point reduction order.
    threads = str(train_cifar.torch.get_num_threads())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": threads}
    script = [sys.executable, str(REPO / "reference_training" / "train_cifar.py")]
    proc = subprocess.Popen([*script, *common, "--out-dir", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    checkpoint = tmp_path / "killed" / "k" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running, proc.stderr.read().decode() if proc.stderr else ""
    proc.stderr.close()
    subprocess.run([*script, *common, "--out-dir", str(tmp_path / "killed"), "--resume"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    _train(train_cifar, data10, tmp_path / "straight", *common[2:])
    _assert_same_run(train_cifar, tmp_path / "straight" / "k", tmp_path / "killed" / "k")


def test_repeats_cifar100_bf16_and_tables_from_real_runs(train_cifar, tmp_path):
    data = tmp_path / "data"
    cifar.write_synthetic(data, "cifar100", train_size=16, test_size=8, seed=1)
    runs = tmp_path / "runs"
    _train(train_cifar, data, runs, "--dataset", "cifar100", "--depth", "8", "--iterations", "2",
           "--noise-rate", "0.4", "--loss", "gr", "--beta", "8", "--lam", "0.5",
           "--schedule", "released", "--seed", "1", "--repeats", "2", "--amp", "bf16")  # fmt: skip
    names = sorted(p.name for p in runs.iterdir())
    assert names == [f"cifar100_resnet8_released_r0.4_gr_b8_l0.5_seed{s}" for s in (1, 2)]
    text = tables.render(*tables.read_runs(runs))
    assert "| released | cifar100 | 8 | 40% | GR (β=8, λ=0.5) | 2 |" in text
    with pytest.raises(ValueError, match="--amp fp16 needs a CUDA device"):
        _train(train_cifar, data, runs, "--dataset", "cifar100", "--amp", "fp16", "--overwrite")


@pytest.mark.parametrize("table", [2, 3, 5])
def test_plan_commands_train_exactly_the_cells_of_the_table(train_cifar, table):
    cells = tables.plan(table)
    commands = tables.plan_commands(table, "/data", "released", 5, 1, "runs", ["--amp", "bf16"])
    assert len(commands) == len(cells) == {2: 9, 3: 24, 5: 11}[table]
    for command, (dataset, depth, rate, spec) in zip(commands, cells, strict=True):
        argv = command.split()[3:]
        assert argv[:2] == ["--data-dir", "/data"] and argv[-2:] == ["--amp", "bf16"]
        args = train_cifar.build_parser().parse_args(argv)
        config = train_cifar.resolve_config(args, args.seed)
        assert (config["dataset"], config["depth"], config["noise_rate"]) == (dataset, depth, rate)
        assert spec.matches(config), command
        assert args.repeats == 5 and args.resume and config["schedule"] == "released"


def test_plan_9_relabels_from_the_run_the_command_before_trains(train_cifar):
    commands = tables.plan_commands(9, "/data", "paper", 2, 1, "runs", ["--amp", "bf16"])
    assert len(commands) == 2 * 2 * 4  # (first run, relabelled) x seeds x 4 cells
    cells = []
    for first, again in zip(commands[::2], commands[1::2], strict=True):
        a = train_cifar.build_parser().parse_args(first.split()[3:])
        config = train_cifar.resolve_config(a, a.seed)
        b = train_cifar.build_parser().parse_args(again.split()[3:])
        assert b.relabel_from == f"runs/{config['run_name']}" and a.relabel_from is None
        assert vars(b) == {**vars(a), "relabel_from": b.relabel_from}  # nothing else differs
        assert train_cifar.resolve_config(b, b.seed)["run_name"] == config["run_name"] + "_relabel"
        cells.append((config["noise_rate"], config["loss"], config["beta"], config["lam"], a.seed))
    assert cells == [(r, *loss, s) for r, loss in ((0.2, ("cce", None, None)),
                     (0.2, ("gr", 12.0, 0.5)), (0.4, ("cce", None, None)),
                     (0.4, ("gr", 16.0, 1.0))) for s in (1, 2)]  # fmt: skip


def test_loss_modules_come_from_emphasis_torch(train_cifar):
    import emphasis_torch

    def config(**kw):
        base = dict(loss="gr", beta=8.0, lam=0.5, eps=1e-6, transform="exp", normalize=True, q=None)
        return {**base, **kw}

    assert isinstance(train_cifar.build_loss(config(loss="cce"), False), emphasis_torch.CCELoss)
    assert isinstance(train_cifar.build_loss(config(loss="mae"), False), emphasis_torch.MAELoss)
    assert isinstance(
        train_cifar.build_loss(config(loss="gce", q=0.7), False), emphasis_torch.GCELoss
    )
    assert isinstance(train_cifar.build_loss(config(), False), emphasis_torch.GRLoss)
    # the option that normalises over the global batch exists in GRLoss
    import inspect

    assert (
        train_cifar.GLOBAL_NORMALIZE_OPTION in inspect.signature(emphasis_torch.GRLoss).parameters
    )


def test_script_help_runs_as_a_file():
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, str(REPO / "reference_training" / "train_cifar.py"), "--help"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "--schedule" in out.stdout and "--resume" in out.stdout
    assert "--halt-after" not in out.stdout


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(train_cifar, data10, tmp_path):
    """DDP with gloo: the global batch split over 2 ranks, GR normalised over the global batch,
    rank 0 alone writing the log, checkpoint and results."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "reference_training.train_cifar", "--data-dir", str(data10),
               "--out-dir", str(tmp_path), *TINY, "--iterations", "4", "--loss", "gr",
               "--noise-rate", "0.2", "--device", "cpu", "--run-name", "ddp"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "ddp"
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    assert "global_batch=True" in config["loss_module"]
    records = _records(run)
    assert [r["iteration"] for r in records if "loss" in r] == [2, 4]  # one writer, no duplicates
    assert [r["iteration"] for r in records if "test_acc" in r] == [4]
    final = json.loads((run / "final.json").read_text())
    assert records[-1] == {"event": "final", **final}
    state = train_cifar.load_checkpoint(run / "checkpoint.pt", "cpu")
    assert state["iteration"] == 4 and state["world_size"] == 2


# ---------------------------------------------------------------------------
# label correction (--relabel-from, the paper's supplementary Table 9)
# ---------------------------------------------------------------------------

RELABEL = ["--iterations", "6", "--noise-rate", "0.4", "--loss", "gr", "--beta", "12",
           "--lam", "1", "--seed", "5"]  # fmt: skip


@pytest.fixture(scope="module")
def relabel_source(train_cifar, data10, tmp_path_factory):
    """A finished GR run on the tiny CIFAR-10 files: the run to relabel from."""
    out = tmp_path_factory.mktemp("relabel")
    assert _train(train_cifar, data10, out, *RELABEL, "--run-name", "src") == 0
    return out / "src"


@pytest.fixture(scope="module")
def relabelled(train_cifar, data10, relabel_source):
    """A run relabelled from ``relabel_source`` at a given rate (a quarter of the examples)."""
    out = relabel_source.parent
    assert _train(train_cifar, data10, out, *RELABEL, "--relabel-from", str(relabel_source),
                  "--relabel-rate", "0.25") == 0  # fmt: skip
    return out / "cifar10_resnet8_paper_r0.4_gr_b12_l1_seed5_relabel0.25"


def _source_logits(train_cifar, data10, source: Path) -> np.ndarray:
    """The finished run's final model on the un-augmented training images, rebuilt by hand."""
    torch = train_cifar.torch
    train = cifar.load_split(data10, "cifar10", train=True)
    net = train_cifar.resnet_cifar(8, 10, 0.0)
    net.load_state_dict(train_cifar.load_checkpoint(source / "checkpoint.pt", "cpu")["model"])
    net.eval()
    normalize = train_cifar.Normalizer(*cifar.channel_stats(train.images))
    with torch.no_grad():
        return net(normalize(torch.from_numpy(train.images))).double().numpy()


def test_relabel_from_a_finished_run(train_cifar, data10, relabel_source, relabelled, tmp_path):
    import emphasis

    out, run = relabel_source.parent, relabelled
    final = json.loads((run / "final.json").read_text())
    source_final = json.loads((relabel_source / "final.json").read_text())
    record = final["relabel"]
    # what the finished run's model says, computed here independently
    train = cifar.load_split(data10, "cifar10", train=True)
    noisy = emphasis.symmetric_noise(train.labels, 0.4, 10, seed=np.random.default_rng([5, 1]))
    logits = _source_logits(train_cifar, data10, relabel_source)
    rows = np.arange(20)
    others = logits.copy()
    others[rows, noisy.labels] = -np.inf
    margin = logits[rows, noisy.labels] - others.max(1)
    score = -margin  # higher: more likely mislabelled
    flagged = np.argsort(-score, kind="stable")[:5]  # 0.25 x 20, the highest scores first
    with np.load(run / "relabel.npz") as saved:
        np.testing.assert_array_equal(saved["flagged"], flagged)
        labels = saved["labels"]
    expected = noisy.labels.copy()
    expected[flagged] = logits[flagged].argmax(1)
    np.testing.assert_array_equal(labels, expected)
    assert record["relabelled"] == 5 and record["rate"] == 0.25
    assert record["rate_source"] == "--relabel-rate"
    assert record["relabelled_acc"] == pytest.approx(
        100 * np.mean(expected[flagged] == train.labels[flagged])
    )
    assert record["corrected_label_acc"] == pytest.approx(100 * np.mean(expected == train.labels))
    assert record["noisy_label_acc"] == pytest.approx(100 * (1 - noisy.realised_rate))
    assert record["source_test_acc_final"] == source_final["test_acc_final"]
    assert record["gain"] == pytest.approx(final["test_acc_final"] - source_final["test_acc_final"])
    # the source's fitting degrees (Table 9): its final model on the clean and flipped subsets
    predicted = logits.argmax(1)
    flipped = noisy.labels != train.labels
    assert source_final["fit_clean"] == pytest.approx(
        100 * np.mean(predicted[~flipped] == train.labels[~flipped])
    )
    assert source_final["fit_noisy"] == pytest.approx(
        100 * np.mean(predicted[flipped] == noisy.labels[flipped])
    )
    config = json.loads((run / "config.json").read_text())
    assert config["relabel_from"] == str(relabel_source) and config["relabel_source"] == "src"
    assert (config["loss"], config["beta"], config["lam"]) == ("gr", 12.0, 1.0)
    assert "GR (β=12, λ=1), relabelled (rate 0.25) | 1 |" in tables.render(*tables.read_runs(out))
    # the rate defaults to estimate_noise_rate on the final model's scores
    assert _train(train_cifar, data10, tmp_path, *RELABEL, "--relabel-from",
                  str(relabel_source)) == 0  # fmt: skip
    estimated = json.loads(
        (tmp_path / "cifar10_resnet8_paper_r0.4_gr_b12_l1_seed5_relabel" / "final.json").read_text()
    )["relabel"]
    rate = emphasis.estimate_noise_rate(score).rate
    assert estimated["rate_source"] == "estimate_noise_rate"
    assert estimated["rate"] == pytest.approx(rate)
    assert estimated["relabelled"] == round(rate * 20)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"relabel-from: .*nowhere is not a directory"),
        ("unfinished", r"relabel-from: .*half is not a finished run: final\.json is missing"),
        ("short", r"checkpoint\.pt is at iteration 5 of 6: the run is unfinished"),
        ("settings", r"src was trained with other settings \(beta: 12\.0 -> 8\.0\)"),
        ("data", r"src was trained on other data \(data_sha256: "),
        ("relabelled", r"is itself a relabelled run \(from src\)"),
    ],
)
def test_relabel_refuses_an_unfinished_or_other_run(
    train_cifar, data10, relabel_source, relabelled, tmp_path, case, message
):
    source, extra, data = relabel_source, [], data10
    if case == "missing":
        source = tmp_path / "nowhere"
    elif case in ("unfinished", "short"):
        source = tmp_path / "runs" / "half"
        with pytest.raises(train_cifar.SimulatedKill):
            _train(train_cifar, data10, tmp_path / "runs", *RELABEL, "--run-name", "half",
                   "--halt-after", "5", "--checkpoint-every", "5")  # fmt: skip
        if case == "short":  # a final.json beside a checkpoint short of the iterations
            (source / "final.json").write_text(json.dumps({"iterations": 5}))
    elif case == "settings":
        extra = ["--beta", "8"]
    elif case == "data":
        data = tmp_path / "other"
        cifar.write_synthetic(data, "cifar10", train_size=20, test_size=16, seed=1)
    elif case == "relabelled":
        source = relabelled
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        _train(train_cifar, data, out, *RELABEL, *extra, "--relabel-from", str(source))
    assert not out.exists()  # refused before anything is written


def test_relabel_rate_needs_relabel_from(train_cifar, data10, relabel_source, tmp_path):
    with pytest.raises(ValueError, match=r"--relabel-rate needs --relabel-from RUN_DIR"):
        _train(train_cifar, data10, tmp_path, *RELABEL, "--relabel-rate", "0.2")
    with pytest.raises(ValueError, match=r"--relabel-rate must be in \[0, 1\], got 1.5"):
        _train(train_cifar, data10, tmp_path, *RELABEL, "--relabel-from", str(relabel_source),
               "--relabel-rate", "1.5")  # fmt: skip

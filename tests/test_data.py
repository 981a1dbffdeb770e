"""Tests for softmax_cli.data: every source (IDX, .npz, Keras, digits), every check, the named data sets, the bounds,
and the cache."""

import dataclasses
import gzip
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_cli import data
from softmax_cli.data import FASHION_CLASS_NAMES, IDX_FILES, Dataset, cache, datasets, formats, load_dataset
from softmax_cli.errors import SoftmaxError
from test_safe_io import deflated_zeros, raw_zip
from test_store import FUZZ, damaged, damaged_inside

REPO = Path(__file__).resolve().parent.parent
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # PROVENANCE.md
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Keep every test's cached copies in its own folder, never in the user's cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SOFTMAX_CACHE_DIR", str(folder))
    return folder


def copies(folder: Path) -> list[Path]:
    """Return the cached copies of data sets in a cache folder (beside them: small ones, such as fingerprints)."""
    return [path for path in folder.glob("*.npz") if "x_train.npy" in zipfile.ZipFile(path).namelist()]


def small_arrays(n_train=12, n_test=6, side=4, k=3) -> dict:
    """Return a tiny data set whose every pixel and label is distinct enough to catch a mix-up."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % k,
        "x_test": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8)[::-1] % k,
    }


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Return array as the bytes of an IDX file: magic number, big-endian sizes, then the pixels or labels."""
    magic = 0x0800 + array.ndim if magic is None else magic
    sizes = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return magic.to_bytes(4, "big") + sizes + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, arrays: dict, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        content = idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / stem).write_bytes(content)
    return folder


def write_npz(path: Path, arrays: dict, compressed: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def assert_same_arrays(dataset: Dataset, arrays: dict):
    for key in data.KEYS:
        np.testing.assert_array_equal(getattr(dataset, key), arrays[key])
    assert dataset.x_train.dtype == dataset.x_test.dtype == np.uint8
    assert dataset.y_train.dtype == dataset.y_test.dtype == np.int64


def load_own(path) -> Dataset:
    """Return the user's own data set at path: no named data set's rules apply."""
    return load_dataset(path, None)


def load_error(path, *, name=None) -> str:
    """Return the message of the SoftmaxError that loading path raises, checking it is one line."""
    with pytest.raises(SoftmaxError) as caught:
        load_dataset(path, name)
    message = str(caught.value)
    assert "\n" not in message and message
    return message


# --- Happy paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_gives_the_arrays_it_holds(tmp_path, gz):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "digits-idx", arrays, gz=gz)
    dataset = load_own(folder)
    assert_same_arrays(dataset, arrays)
    assert dataset.name == "digits-idx"
    assert dataset.source == str(folder)
    assert dataset.class_names == ("0", "1", "2")
    assert (dataset.image_shape, dataset.n_classes, dataset.n_features) == ((4, 4), 3, 16)


def test_npz_file_and_folder_holding_it_give_its_arrays(tmp_path):
    arrays = small_arrays()
    npz = write_npz(tmp_path / "set" / "tiny.npz", arrays)
    for path in (npz, npz.parent):
        dataset = load_own(path)
        assert_same_arrays(dataset, arrays)
        assert dataset.source == str(npz)
    assert load_own(npz).name == "tiny"
    assert load_own(npz.parent).name == "set"


def test_folder_with_several_npz_uses_the_named_one(tmp_path):
    write_npz(tmp_path / "mnist.npz", small_arrays(side=28, k=10, n_train=20, n_test=10))
    write_npz(tmp_path / "other.npz", small_arrays(k=2))
    assert load_dataset(tmp_path, "mnist").source == str(tmp_path / "mnist.npz")
    assert "several .npz files (mnist.npz, other.npz): point data at the one to use" in load_error(tmp_path)


def test_folder_with_npz_and_idx_reads_the_faster_source(tmp_path):
    npz_arrays, idx_arrays = small_arrays(k=3), small_arrays(k=2)
    write_npz(tmp_path / "mnist.npz", npz_arrays)
    write_idx_folder(tmp_path, idx_arrays, gz=True)
    assert load_own(tmp_path).source == str(tmp_path / "mnist.npz")  # about as fast as .gz, and one file
    write_idx_folder(tmp_path, idx_arrays, gz=False)
    assert_same_arrays(load_own(tmp_path), idx_arrays)  # uncompressed IDX: no decompression at all


@pytest.mark.parametrize(
    "reshape",
    [lambda x: x.reshape(len(x), -1), lambda x: x[..., np.newaxis]],
    ids=["flat (n, d)", "channel (n, h, w, 1)"],
)
def test_images_in_other_layouts_become_n_h_w(tmp_path, reshape):
    arrays = small_arrays()
    stored = {**arrays, "x_train": reshape(arrays["x_train"]), "x_test": reshape(arrays["x_test"])}
    assert_same_arrays(load_own(write_npz(tmp_path / "d.npz", stored)), arrays)


def test_float_and_wide_integer_pixels_become_uint8(tmp_path):
    arrays = small_arrays()
    stored = {
        **arrays,
        "x_train": arrays["x_train"] / 255,  # float64 in 0..1
        "x_test": arrays["x_test"].astype(np.float32) * 0.999 + 0.1,  # float in 0..255, off by < 0.5
        "y_train": arrays["y_train"].astype(np.int64),
        "y_test": arrays["y_test"].astype(np.float64),  # whole numbers stored as floats
    }
    assert_same_arrays(load_own(write_npz(tmp_path / "d.npz", stored)), arrays)
    wide = {**arrays, "x_train": arrays["x_train"].astype(np.int32)}
    assert_same_arrays(load_own(write_npz(tmp_path / "w.npz", wide)), arrays)


def test_class_names_come_from_the_npz_or_the_named_data_set_never_from_a_folder_name(tmp_path):
    arrays = small_arrays()
    named = write_npz(tmp_path / "n.npz", {**arrays, "class_names": np.array(["cat", "dog", "owl", "yak"])})
    assert load_own(named).class_names == ("cat", "dog", "owl", "yak")
    assert load_own(named).n_classes == 4
    assert load_own(write_npz(tmp_path / "my-Fashion" / "d.npz", arrays)).class_names == ("0", "1", "2")
    assert load_own(write_idx_folder(tmp_path / "fashion-idx", arrays)).n_classes == 3
    clothes = write_idx_folder(tmp_path / "clothes", small_arrays(side=28, k=10, n_train=20, n_test=10))
    dataset = load_dataset(clothes, "fashion_mnist")
    assert (dataset.name, dataset.class_names) == ("fashion_mnist", FASHION_CLASS_NAMES)


def test_dataset_arrays_are_read_only(tmp_path):
    dataset = load_own(write_npz(tmp_path / "d.npz", small_arrays()))
    with pytest.raises(ValueError):
        dataset.x_train[0, 0, 0] = 1


# --- Errors: paths and folders ----------------------------------------------------------------------------


def test_missing_path_and_folders_without_data_name_what_was_expected(tmp_path):
    missing = tmp_path / "nowhere"
    assert str(missing) in load_error(missing) and "does not exist" in load_error(missing)
    message = load_error(tmp_path)
    assert str(tmp_path) in message and ".npz" in message and "IDX" in message
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    message = load_error(tmp_path)
    assert "lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in message


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(SoftmaxError, match="unknown data set 'cifar': choose one of mnist, fashion_mnist, digits"):
        load_dataset(None, "cifar")
    with pytest.raises(SoftmaxError, match="^your own data needs a path: set data to its .npz or IDX folder$"):
        load_dataset(None, None)


# --- Errors: IDX files ------------------------------------------------------------------------------------


def corrupt_idx(tmp_path, key: str, content: bytes) -> tuple[Path, Path]:
    """Return a gzipped IDX folder whose file for key holds content, and that file."""
    folder = write_idx_folder(tmp_path / "idx", small_arrays())
    file = folder / f"{IDX_FILES[key]}.gz"
    file.write_bytes(gzip.compress(content))
    return folder, file


@pytest.mark.parametrize(
    "key, content, problem",
    [
        ("x_train", idx_bytes(small_arrays()["x_train"], magic=2049), "magic number 2049, expected 2051"),
        ("y_test", idx_bytes(small_arrays()["x_test"]), "magic number 2051, expected 2049"),
        ("y_train", b"\x00\x00", "magic number 0, expected 2049"),
        ("x_train", idx_bytes(small_arrays()["x_train"])[:10], "truncated: it ends inside its header"),
        ("x_train", idx_bytes(small_arrays()["x_train"])[:-5], "truncated: its header gives shape (12, 4, 4)"),
        ("x_test", idx_bytes(small_arrays()["x_test"]) + b"\x00", "longer than its header says"),
        ("y_train", idx_bytes(np.arange(12) % 3)[:-12], "truncated"),
    ],
    ids=["images-magic", "labels-magic", "short-header", "cut-header", "truncated-images", "extra-bytes", "no-labels"],
)
def test_damaged_idx_file_is_named_with_its_problem(tmp_path, key, content, problem):
    folder, file = corrupt_idx(tmp_path, key, content)
    message = load_error(folder)
    assert message.startswith(str(file)) and problem in message


def test_corrupt_or_cut_gzip_is_a_clean_error(tmp_path):
    folder, file = corrupt_idx(tmp_path, "x_train", b"")
    compressed = gzip.compress(idx_bytes(small_arrays()["x_train"]))
    file.write_bytes(compressed[:20])
    assert f"cannot read {file} (damaged gzip data)" in load_error(folder)
    file.write_bytes(compressed[:10] + bytes(range(200, 256)) + compressed[66:])
    assert f"cannot read {file} (damaged gzip data)" in load_error(folder)
    file.write_bytes(b"not gzip at all")
    assert f"cannot read {file} (damaged gzip data)" in load_error(folder)


def idx_header(magic: int, *shape: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)


def gzip_bomb(header: bytes, zeros_mib: int) -> bytes:
    """Return a gzip file of about zeros_mib KB that expands to header and then zeros_mib MiB of zeros."""
    # Gzip members one after another are one stream to every reader: a member of 1 MiB of zeros takes 1 KB.
    return gzip.compress(header) + gzip.compress(bytes(2**20)) * zeros_mib


def refusal_and_peak_memory(folder) -> tuple[str, int]:
    """Return the message of the error that loading folder raises, and the most memory allocated meanwhile."""
    tracemalloc.start()  # sees every Python and NumPy allocation
    try:
        return load_error(folder), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("key, shape", [("x_train", (10**9, 28, 28)), ("y_train", (3 * 10**9,))],
                         ids=["images", "labels"])
def test_a_gzip_bomb_claiming_an_absurd_size_is_refused_from_its_header(tmp_path, key, shape):
    folder, file = corrupt_idx(tmp_path, key, b"")
    file.write_bytes(gzip_bomb(idx_header(formats.IDX_MAGIC[key[0]], *shape), zeros_mib=1024))  # 1 MB: 1 GiB inside
    message, peak = refusal_and_peak_memory(folder)
    assert message.startswith(f"{file} is not a usable IDX {'images' if key == 'x_train' else 'labels'} file: ")
    assert f"its header gives shape {shape}, {math.prod(shape):,} bytes; a data set has at most 10,000,000 images" \
           in message
    assert peak < 16 * 2**20  # nothing past the header was decompressed


def test_an_uncompressed_idx_file_claiming_an_absurd_size_is_refused(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", small_arrays(), gz=False)
    file = folder / IDX_FILES["x_train"]
    file.write_bytes(idx_header(2051, 10**9, 28, 28) + bytes(1000))
    assert load_error(folder).startswith(f"{file} is not a usable IDX images file: its header gives shape")


def test_a_gzip_bomb_behind_a_plausible_header_is_decompressed_only_as_far_as_the_header_says(tmp_path):
    folder, file = corrupt_idx(tmp_path, "x_train", b"")
    file.write_bytes(gzip_bomb(idx_header(2051, 1000, 28, 28), zeros_mib=1024))  # 784,000 bytes, then 1 GiB more
    message, peak = refusal_and_peak_memory(folder)
    assert message == (
        f"{file} is longer than its header says: its header gives shape (1000, 28, 28) (784000 bytes) but it holds more"
    )
    assert peak < 16 * 2**20


def test_a_damaged_label_that_makes_a_class_without_training_images_is_refused(tmp_path):
    labels = np.arange(12) % 3
    labels[5] = 200  # one flipped bit would make 201 classes, 197 of them empty
    folder, _ = corrupt_idx(tmp_path, "y_train", idx_bytes(labels))
    message = load_error(folder)
    assert message.startswith(f"{folder}: labels run up to 200 but no training image has label 3")
    assert "is a label file damaged?" in message


def test_idx_labels_out_of_step_with_images_name_both_files(tmp_path):
    folder, file = corrupt_idx(tmp_path, "y_test", idx_bytes(np.arange(5) % 3))
    message = load_error(folder)
    assert "t10k-images-idx3-ubyte.gz has 6 images but" in message and f"{file} has 5 labels" in message


# --- Errors: arrays (through an .npz, the source that can hold anything) ----------------------------------


def with_change(key, value):
    return lambda arrays: {**arrays, key: value}


@pytest.mark.parametrize(
    "change, problem",
    [
        (with_change("y_train", np.full(12, -1)), "(y_train): labels must be class numbers 0..k-1, found -1"),
        (with_change("y_train", np.full(12, 2.5)), "(y_train): labels must be whole numbers"),
        (with_change("y_test", np.full(6, np.nan)), "(y_test): labels must be whole numbers"),
        (with_change("y_test", np.array(list("abcdef"))), "(y_test): labels are <U1; expected whole numbers"),
        (with_change("y_train", np.zeros((12, 1))), "(y_train): labels have shape (12, 1); expected"),
        (with_change("y_train", np.full(12, 10**9)), "labels run up to 1000000000, more classes than the 1000"),
        (with_change("y_test", np.arange(6) % 4), "labels run up to 3 but no training image has label 3"),
        (with_change("y_test", np.zeros(5)), "(x_test) has 6 images but"),
        (with_change("x_test", np.zeros((6, 5, 5), np.uint8)), "training images are 4x4 pixels but test images"),
        (with_change("x_train", np.zeros((0, 4, 4), np.uint8)), "(x_train): there are no images"),
        (lambda a: {**a, "x_test": a["x_test"][:0], "y_test": a["y_test"][:0]}, "(x_test): there are no images"),
        (with_change("x_train", np.zeros(12, np.uint8)), "(x_train): images have shape (12,); expected"),
        (with_change("x_train", np.zeros((12, 15), np.uint8)), "images have shape (12, 15)"),
        (with_change("x_train", np.zeros((12, 4, 4, 3), np.uint8)), "images have shape (12, 4, 4, 3)"),
        (with_change("x_train", np.full((12, 4, 4), np.nan)), "(x_train): some pixels are NaN or infinite"),
        (with_change("x_test", np.full((6, 4, 4), np.inf)), "(x_test): some pixels are NaN or infinite"),
        (with_change("x_train", np.full((12, 4, 4), 255.6)), "pixel values run 255.6..255.6; expected 0..255"),
        (with_change("x_train", np.full((12, 4, 4), -0.5)), "pixel values run -127.5..-127.5"),
        (with_change("x_train", np.full((12, 4, 4), 256, np.int16)), "pixel values run 256..256; expected 0..255"),
        (with_change("x_test", np.full((6, 4, 4), -1, np.int8)), "pixel values run -1..-1"),
        (with_change("x_train", np.full((12, 4, 4), True)), "(x_train): pixels are bool; expected numbers"),
        (with_change("class_names", np.array(["a", "b"])), "(y_train): label 2 is out of range: there are 2 classes"),
        (with_change("class_names", np.arange(3)), "class_names must be a 1-D array of 2 to 1000 strings"),
        (with_change("class_names", np.array(["a", "$\\foo$", "c"])), "class name '$\\\\foo$' is not printable text"),
        (with_change("class_names", np.array(["a", "b\nc", "d"])), "class name 'b\\nc' is not printable text"),
    ],
)
def test_bad_arrays_in_npz_are_named_with_their_problem(tmp_path, change, problem):
    npz = write_npz(tmp_path / "bad.npz", change(small_arrays()))
    message = load_error(npz)
    assert str(npz) in message and problem in message


def test_fashion_names_reject_an_eleventh_class(tmp_path):
    arrays = small_arrays()
    npz = write_npz(tmp_path / "fashion.npz", {**arrays, "y_test": np.full(6, 10)})
    assert "(y_test): label 10 is out of range: there are 10 classes (0..9)" in load_error(npz, name="fashion_mnist")


def test_npz_without_the_keras_keys_or_with_objects_or_not_npz_at_all(tmp_path):
    arrays = small_arrays()
    partial = write_npz(tmp_path / "partial.npz", {"x_train": arrays["x_train"], "images": arrays["x_test"]})
    assert "lacks y_train, x_test, y_test: a Keras-format .npz holds" in load_error(partial)
    assert "(it has x_train, images)" in load_error(partial)
    objects = write_npz(tmp_path / "objects.npz", {**arrays, "y_train": np.array([1, "a"], dtype=object)})
    assert f"cannot read {objects}: it holds an array of object (only numbers and text are read, never pickled" \
           in load_error(objects)
    text = tmp_path / "notes.npz"
    text.write_text("these are not arrays")
    assert f"cannot read {text}: not an .npz archive" in load_error(text)
    single = tmp_path / "single.npy"
    np.save(single, arrays["x_train"])
    assert f"cannot read {single}: not an .npz archive" in load_error(single)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(write_npz(tmp_path / "whole.npz", arrays).read_bytes()[:300])
    assert load_error(cut).startswith(f"cannot read {cut}: ")


def test_huge_labels_are_refused_before_they_wrap_round_to_negative_numbers(tmp_path):
    for labels in (np.full(12, 2**63, np.uint64), np.full(12, 1e300)):
        npz = write_npz(tmp_path / "huge.npz", with_change("y_train", labels)(small_arrays()))
        assert "(y_train): labels must be class numbers 0..k-1, found " in load_error(npz)


def test_npz_member_that_is_not_an_array(tmp_path):
    npz = write_npz(tmp_path / "raw.npz", small_arrays(), compressed=False)
    with zipfile.ZipFile(npz, "a") as archive:
        archive.writestr("class_names.npy", b"cat,dog,owl")  # no .npy header: numpy would hand back these bytes
    assert f"cannot read {npz}: class_names is not a valid .npy array" in load_error(npz)


# --- Fuzzing: whatever the bytes, a clear error or a data set that passes every check ----------------------


def assert_valid_dataset(dataset: Dataset):
    """Check what training relies on: uint8 images of one shape, one int64 label each, every label a class."""
    assert dataset.x_train.shape[1:] == dataset.x_test.shape[1:] and len(dataset.image_shape) == 2
    for images, labels in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test)):
        assert images.dtype == np.uint8 and images.ndim == 3 and len(images) == len(labels) > 0
        assert labels.dtype == np.int64 and labels.ndim == 1
        assert 0 <= labels.min() and labels.max() < dataset.n_classes


def load_or_refuse(path):
    """Load the data set at path and check it, or check that the error it raised is one line."""
    try:
        dataset = load_own(path)
    except SoftmaxError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert_valid_dataset(dataset)


@FUZZ
@given(key=st.sampled_from(sorted(IDX_FILES)), gz=st.booleans(), data=st.data())
def test_damaged_or_random_idx_file_is_refused_or_read(tmp_path, key, gz, data):
    folder = write_idx_folder(tmp_path / "idx", small_arrays(), gz=gz)
    valid = idx_bytes(small_arrays()[key])
    content = data.draw(st.one_of(st.binary(max_size=300), damaged(valid)))
    if gz:  # bad IDX bytes in a sound gzip stream (the IDX checks must catch them), or a damaged stream
        content = gzip.compress(content) if data.draw(st.booleans()) else data.draw(damaged(gzip.compress(valid)))
    (folder / f"{IDX_FILES[key]}{'.gz' if gz else ''}").write_bytes(content)
    load_or_refuse(folder)


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory) -> dict[bool, bytes]:
    """Return the bytes of a valid small .npz data set with class names, by whether it is compressed."""
    folder = tmp_path_factory.mktemp("npz")
    arrays = {**small_arrays(), "class_names": np.array(["cat", "dog", "owl"])}
    return {
        compressed: write_npz(folder / f"{compressed}.npz", arrays, compressed=compressed).read_bytes()
        for compressed in (True, False)
    }


@FUZZ
@given(compressed=st.booleans(), data=st.data())
def test_damaged_or_random_npz_is_refused_or_read(tmp_path, npz_files, compressed, data):
    original = npz_files[compressed]
    # damaged_inside zips a damaged member again, so that no CRC-32 gives the damage away.
    content = data.draw(st.one_of(st.binary(max_size=600), damaged(original), damaged_inside(original)))
    (tmp_path / "d.npz").write_bytes(content)
    load_or_refuse(tmp_path / "d.npz")


# --- The cache of local sources ---------------------------------------------------------------------------


def test_compressed_source_is_read_once_then_from_the_cache(tmp_path, cache_dir, monkeypatch):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "fashion-idx", arrays, gz=True)
    first = load_own(folder)
    assert len(copies(cache_dir)) == 1

    def no_decompressing(*args, **kwargs):
        raise AssertionError("the source was decompressed again")

    monkeypatch.setattr(gzip, "GzipFile", no_decompressing)
    cached = load_own(folder)
    assert_same_arrays(cached, arrays)
    assert (cached.name, cached.source, cached.class_names) == (first.name, first.source, ("0", "1", "2"))


def test_changed_source_is_never_served_from_an_old_copy(tmp_path, cache_dir):
    npz = write_npz(tmp_path / "d.npz", small_arrays(k=3))
    assert load_own(npz).n_classes == 3
    stat = npz.stat()
    write_npz(npz, small_arrays(k=2))
    os.utime(npz, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time; the size may match too: content decides
    assert load_own(npz).n_classes == 2
    assert len(copies(cache_dir)) == 2


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, cache_dir, damage):
    arrays = small_arrays(n_train=200, side=8)
    npz = write_npz(tmp_path / "d.npz", arrays)
    load_own(npz)
    (cache,) = copies(cache_dir)
    content = bytearray(cache.read_bytes())
    if damage == "flip a byte":
        content[len(content) // 3] ^= 0xFF  # inside x_train's pixels: only its CRC-32 shows it
    cache.write_bytes(content[: len(content) // 2] if damage == "truncate" else b"" if damage == "empty" else content)
    assert_same_arrays(load_own(npz), arrays)
    assert_same_arrays(load_own(cache), arrays)  # rebuilt whole: it is itself a valid Keras-format .npz


def test_deleting_the_cache_is_safe(tmp_path, cache_dir):
    arrays = small_arrays()
    npz = write_npz(tmp_path / "d.npz", arrays)
    load_own(npz)
    shutil.rmtree(cache_dir)
    assert_same_arrays(load_own(npz), arrays)
    assert len(copies(cache_dir)) == 1


def test_a_cached_sources_fingerprint_is_kept_in_the_cache_too(tmp_path, cache_dir, monkeypatch):
    """Hashing MNIST's training set takes a tenth of `softmax train`'s whole process: a source read through the
    cache is hashed once. A damaged or deleted kept fingerprint is hashed again, never trusted."""
    arrays = small_arrays()
    npz = write_npz(tmp_path / "d.npz", arrays)
    expected = load_own(npz).fingerprint()
    assert expected == data.make_dataset("d", arrays, {key: key for key in arrays}, "here").fingerprint()
    hashed, real = [], Dataset._digest
    monkeypatch.setattr(Dataset, "_digest", lambda self: hashed.append(1) or real(self))
    assert load_own(npz).fingerprint() == expected and not hashed
    (kept,) = set(cache_dir.glob("*.npz")) - set(copies(cache_dir))
    for damage in (lambda: kept.write_bytes(kept.read_bytes()[:-7]), kept.unlink):
        damage()
        assert load_own(npz).fingerprint() == expected and len(hashed) == 1
        hashed.clear()


def test_uncompressed_sources_are_not_copied(tmp_path, cache_dir):
    load_own(write_idx_folder(tmp_path / "raw", small_arrays(), gz=False))
    load_own(write_npz(tmp_path / "plain.npz", small_arrays(), compressed=False))
    assert not cache_dir.exists()


def test_unwritable_cache_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SOFTMAX_CACHE_DIR", str(blocker / "cache"))
    arrays = small_arrays()
    assert_same_arrays(load_own(write_npz(tmp_path / "d.npz", arrays)), arrays)


def test_cache_lives_in_the_user_cache_folder_by_default(tmp_path, monkeypatch):
    npz = write_npz(tmp_path / "d.npz", small_arrays())
    monkeypatch.delenv("SOFTMAX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_own(npz)
    assert len(copies(tmp_path / "xdg" / "softmax-cli")) == 1
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    load_own(npz)
    assert len(copies(tmp_path / "home" / ".cache" / "softmax-cli")) == 1


# --- Bundled digits --------------------------------------------------------------------


def test_digits_are_8x8_uint8_split_75_25_by_class_the_same_every_time():
    dataset = load_dataset(None, "digits")
    assert dataset.x_train.shape == (1347, 8, 8) and dataset.x_test.shape == (450, 8, 8)
    assert dataset.x_train.dtype == np.uint8 and dataset.x_train.max() == 255
    assert set(np.unique(dataset.x_train)) <= {round(v * 255 / 16) for v in range(17)}
    assert dataset.class_names == tuple("0123456789") and dataset.source == "sklearn.datasets.load_digits"
    assert np.bincount(dataset.y_test).tolist() == [45, 46, 44, 46, 45, 46, 45, 45, 43, 45]  # a quarter of each class
    np.testing.assert_array_equal(load_dataset(None, "digits").x_test, dataset.x_test)


def test_importing_data_does_not_import_tensorflow():
    code = "import sys, softmax_cli.data; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- Real data (slow) -------------------------------------------------------------------------------------


def assert_is_mnist(dataset: Dataset):
    assert dataset.x_train.shape == (60000, 28, 28) and dataset.x_test.shape == (10000, 28, 28)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert np.bincount(dataset.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(dataset.y_test).tolist() == MNIST_TEST_COUNTS
    assert round(float(dataset.x_train.mean()), 4) == 33.3184
    assert dataset.class_names == tuple("0123456789")


@pytest.mark.slow
def test_real_mnist_folder_loads_and_then_loads_from_the_cache(mnist_path, cache_dir):
    dataset = load_dataset(mnist_path)
    assert_is_mnist(dataset)
    assert dataset.name == "mnist" and dataset.source == str(mnist_path / "mnist.npz")
    assert len(copies(cache_dir)) == 1
    assert_is_mnist(load_dataset(mnist_path))


@pytest.mark.slow
def test_real_mnist_idx_files_equal_the_npz(mnist_path, tmp_path):
    for stem in IDX_FILES.values():
        (tmp_path / f"{stem}.gz").symlink_to(mnist_path / f"{stem}.gz")
    from_idx = load_own(tmp_path)
    with np.load(mnist_path / "mnist.npz") as keras_arrays:
        for key in data.KEYS:
            np.testing.assert_array_equal(getattr(from_idx, key), keras_arrays[key])


@pytest.mark.slow
def test_real_fashion_folder_has_fashion_class_names(fashion_path):
    dataset = load_dataset(fashion_path, "fashion_mnist")
    assert dataset.class_names == FASHION_CLASS_NAMES
    assert np.bincount(dataset.y_train).tolist() == [6000] * 10
    assert round(float(dataset.x_train.mean()), 2) == 72.94


# One process, one TensorFlow import for all Keras checks; KERAS_HOME is set before Keras reads it.
KERAS_SCRIPT = """
import json, sys, urllib.error
import numpy as np
from softmax_cli.export import import_keras
import_keras()  # first, as softmax train's download does: the patches below need Keras' modules
import keras.src.datasets.mnist, keras.src.utils.file_utils
from softmax_cli.data import load_dataset
from softmax_cli.errors import SoftmaxError

def summary(dataset):
    return {"name": dataset.name, "source": dataset.source, "class_names": list(dataset.class_names),
            "shapes": [list(dataset.x_train.shape), list(dataset.x_test.shape)],
            "train_counts": np.bincount(dataset.y_train).tolist(), "test_counts": np.bincount(dataset.y_test).tolist(),
            "train_mean": round(float(dataset.x_train.mean()), 4)}

def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -2] Name or service not known")

results = {"fashion_mnist": summary(load_dataset(None, "fashion_mnist"))}
keras.src.utils.file_utils.urlretrieve = offline  # the real get_file, failing the way it does without network
try:
    load_dataset(None, "mnist")
except SoftmaxError as error:
    results["offline"] = error.in_terms_of(lambda setting: f"--{setting}")
keras.src.datasets.mnist.get_file = lambda *args, **kwargs: sys.argv[1]  # mnist.load_data looks it up here
results["mnist"] = summary(load_dataset(None, "mnist"))
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def keras_results(mnist_path, fashion_path, tmp_path_factory) -> dict:
    keras_home = tmp_path_factory.mktemp("keras-home")
    downloads = keras_home / "datasets" / "fashion-mnist"  # where keras.datasets.fashion_mnist looks first
    downloads.mkdir(parents=True)
    for file in fashion_path.glob("*.gz"):
        (downloads / file.name).symlink_to(file)
    env = {**os.environ, "KERAS_HOME": str(keras_home)}
    result = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, str(mnist_path / "mnist.npz")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {**json.loads(result.stdout), "stderr": result.stderr}  # fails if Keras wrote its messages to stdout


@pytest.mark.slow
def test_keras_mnist_gives_the_real_set(keras_results):
    mnist = keras_results["mnist"]
    assert mnist["shapes"] == [[60000, 28, 28], [10000, 28, 28]]
    assert mnist["train_counts"] == MNIST_TRAIN_COUNTS and mnist["test_counts"] == MNIST_TEST_COUNTS
    assert mnist["train_mean"] == 33.3184
    assert (mnist["name"], mnist["source"]) == ("mnist", "keras.datasets.mnist")


@pytest.mark.slow
def test_keras_fashion_mnist_gives_the_real_set_with_its_class_names(keras_results):
    fashion = keras_results["fashion_mnist"]
    assert fashion["shapes"] == [[60000, 28, 28], [10000, 28, 28]]
    assert fashion["class_names"] == list(FASHION_CLASS_NAMES)
    assert fashion["train_counts"] == [6000] * 10 and fashion["test_counts"] == [1000] * 10
    assert fashion["source"] == "keras.datasets.fashion_mnist"


@pytest.mark.slow
def test_tensorflow_start_up_noise_stays_off_stderr(keras_results):
    # absl's "All log messages before absl::InitializeLog()" and CUDA probing come from C++, ignoring TF_CPP_*
    lines = keras_results["stderr"].splitlines()
    assert all(line.startswith("Downloading data from") for line in lines), lines


@pytest.mark.slow
def test_keras_without_network_says_how_to_use_a_local_copy(keras_results):
    message = keras_results["offline"]
    assert message.startswith("could not download MNIST through keras.datasets (no network? URL fetch failure")
    assert message.endswith(": point --data at a local copy (a Keras .npz or a folder with the four IDX files)")
    assert "\n" not in message


# --- A data set knows what it is ----------------------------------------------------------------------------


def mnist_like(**changes) -> dict:
    """Return a tiny set shaped like MNIST and Fashion-MNIST: 28x28 images, labels 0..9."""
    return {**small_arrays(n_train=20, n_test=10, side=28, k=10), **changes}


@pytest.fixture
def known_tiny_sets(monkeypatch):
    """Make two tiny sets the genuine MNIST and Fashion-MNIST, by their fingerprints; return their arrays."""
    sets = {"mnist": mnist_like(), "fashion_mnist": mnist_like(x_train=255 - mnist_like()["x_train"])}
    for name, arrays in sets.items():
        fingerprint = data.make_dataset(name, arrays, {key: key for key in arrays}, name).fingerprint()
        monkeypatch.setitem(datasets.KNOWN, name, dataclasses.replace(datasets.KNOWN[name], fingerprint=fingerprint))
    return sets


def error_on_the_command_line(call) -> str:
    """Return the one-line message of the SoftmaxError call() raises, with its setting named as the CLI names it."""
    with pytest.raises(SoftmaxError) as caught:
        call()
    message = caught.value.in_terms_of(lambda setting: f"--{setting}")
    assert "\n" not in message and "{setting}" not in message
    return message


def test_the_name_decides_the_class_names_also_with_a_path(tmp_path, known_tiny_sets):
    clothes = write_idx_folder(tmp_path / "clothes", known_tiny_sets["fashion_mnist"])
    assert load_dataset(clothes, "fashion_mnist").class_names == FASHION_CLASS_NAMES
    assert load_dataset(write_npz(tmp_path / "x" / "fashion.npz", mnist_like()), "mnist").class_names == \
        tuple("0123456789")


def test_a_known_data_set_given_under_another_name_is_refused_with_advice_that_works(tmp_path, known_tiny_sets):
    mnist_files = write_npz(tmp_path / "mnist" / "mnist.npz", known_tiny_sets["mnist"])
    message = error_on_the_command_line(lambda: load_dataset(mnist_files.parent, "fashion_mnist"))
    assert message == (f"{mnist_files} holds the training images of MNIST, not of Fashion-MNIST: point --data at "
                       "Fashion-MNIST's files (or give no data path, to download them), or name the data set mnist")
    fashion_files = write_idx_folder(tmp_path / "clothes", known_tiny_sets["fashion_mnist"])
    assert load_dataset(fashion_files, "fashion_mnist").name == "fashion_mnist"  # the advice, followed
    assert load_dataset(mnist_files.parent, "mnist").name == "mnist"


@pytest.mark.parametrize("arrays, found", [
    (small_arrays(), "4x4 images in 3 classes"),
    (mnist_like(y_train=np.arange(20) % 3, y_test=np.arange(10) % 3), "28x28 images in 3 classes"),
])
def test_data_of_another_shape_or_number_of_classes_than_the_named_set_is_refused(tmp_path, arrays, found):
    npz = write_npz(tmp_path / "d.npz", arrays)
    message = error_on_the_command_line(lambda: load_dataset(npz, "mnist"))
    assert message == f"{npz} holds {found}, not the 28x28 in 10 of MNIST: point --data at MNIST's files, " \
                      "or name the data set it is"


# --- Bounds: checked from headers, before anything large is allocated ---------------------------------------


def test_two_huge_images_in_a_small_gzip_are_refused_at_once(tmp_path):
    folder, file = corrupt_idx(tmp_path, "x_train", b"")
    file.write_bytes(gzip_bomb(idx_header(2051, 2, 30000, 30000), zeros_mib=64))
    message, peak = refusal_and_peak_memory(folder)
    assert message.startswith(f"{file} is not a usable IDX images file: its header gives shape (2, 30000, 30000)")
    assert "images of at most 1024x1024 pixels" in message and peak < 4 * 2**20  # 1.8 GB claimed


def test_two_huge_images_in_a_small_npz_are_refused_from_the_npy_header(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2, 30000, 30000)})
    pixels = deflated_zeros(1717, header.getvalue())  # 1.8 GB of zeros in 1.8 MB
    small = {f"{key}.npy": npy_bytes(value)
             for key, value in small_arrays().items() if key != "x_train"}
    members = [("x_train.npy", pixels, zipfile.ZIP_DEFLATED, len(header.getvalue()) + 2 * 30000**2, 0)]
    members += [(name, content, zipfile.ZIP_STORED, len(content), zlib.crc32(content)) for name, content in small.items()]
    npz = tmp_path / "huge.npz"
    npz.write_bytes(raw_zip(members))
    message, peak = refusal_and_peak_memory(npz)
    assert message.startswith(f"{npz} (x_train) is too large for a data set: its header gives shape (2, 30000, 30000)")
    assert peak < 8 * 2**20  # 1.8 GB claimed: what is read is a chunk of the file, to hash it and to find its header


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_200000_class_names_are_refused_before_they_are_read(tmp_path):
    names = np.array([f"class {i}" for i in range(200_000)])
    npz = write_npz(tmp_path / "names.npz", {**small_arrays(), "class_names": names})
    assert npz.stat().st_size < 3 * 2**20
    message, peak = refusal_and_peak_memory(npz)
    assert message.startswith(f"{npz} (class_names) is too large for a data set: its header gives shape (200000,)")
    assert peak < 8 * 2**20  # 200,000 names take 14 MB


def test_images_too_large_for_a_model_file_are_refused_before_training(tmp_path):
    folder, file = corrupt_idx(tmp_path, "x_train", b"")
    file.write_bytes(gzip.compress(idx_header(2051, 2, 3000, 3000)))
    assert "its header gives shape (2, 3000, 3000)" in load_error(folder)
    arrays = small_arrays(n_train=50, n_test=1, side=600, k=50)
    message = load_error(write_npz(tmp_path / "wide.npz", arrays, compressed=False))
    assert "a model of 600x600-pixel images in 50 classes would take 72,000,000 bytes, more than the 67,108,864" \
           in message


def test_a_fifo_given_as_data_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    assert load_error(fifo) == f"the data file {fifo} is not a regular file (a FIFO): give the path of a file"


# --- Evaluate refuses data the model was not made for -------------------------------------------------------


def saved_model(dataset: Dataset):
    from softmax_cli.store import SavedModel

    W = np.zeros((dataset.n_features, dataset.n_classes), np.float32)
    metadata = {"class_names": list(dataset.class_names), "image_shape": list(dataset.image_shape),
                "dataset": dataset.name, "training_data": dataset.fingerprint()}
    return SavedModel(W, np.zeros(dataset.n_classes, np.float32), metadata)


def test_a_model_fits_the_data_it_was_trained_on(tmp_path, known_tiny_sets):
    mnist = load_dataset(write_npz(tmp_path / "m.npz", known_tiny_sets["mnist"]), "mnist")
    data.check_model_fits(saved_model(mnist), mnist)
    own = load_own(write_npz(tmp_path / "own.npz", small_arrays()))
    data.check_model_fits(saved_model(own), own)


def test_evaluating_a_fashion_model_on_mnist_is_refused_and_the_advice_works(tmp_path, known_tiny_sets):
    fashion_files = write_idx_folder(tmp_path / "clothes", known_tiny_sets["fashion_mnist"])
    model = saved_model(load_dataset(fashion_files, "fashion_mnist"))
    mnist_files = write_npz(tmp_path / "mnist" / "mnist.npz", known_tiny_sets["mnist"])
    mnist = load_dataset(mnist_files, "mnist")
    message = error_on_the_command_line(lambda: data.check_model_fits(model, mnist))
    assert message == (f"the model was trained on fashion_mnist but this data is mnist ({mnist_files}): evaluate it "
                       "with --dataset fashion_mnist and Fashion-MNIST's files as its data (or no data path, to "
                       "download them)")
    # Following only half of it (SOFTMAX_DATA still pointing at MNIST) is refused with the other half.
    assert "point --data at Fashion-MNIST's files" in error_on_the_command_line(
        lambda: load_dataset(mnist_files, "fashion_mnist"))
    data.check_model_fits(model, load_dataset(fashion_files, "fashion_mnist"))


def test_other_class_names_or_image_sizes_are_refused(tmp_path):
    own = load_own(write_npz(tmp_path / "own.npz", small_arrays()))
    named = load_own(write_npz(tmp_path / "n.npz", {**small_arrays(), "class_names": np.array(["a", "b", "c"])}))
    message = error_on_the_command_line(lambda: data.check_model_fits(saved_model(own), named))
    assert message.startswith("the model's classes (0, 1, 2) are not this data's (a, b, c, ")
    assert message.endswith(": evaluate it on the data it was trained on (own, whose classes are its own)")
    bigger = load_own(write_npz(tmp_path / "big.npz", small_arrays(side=5)))
    assert "the model takes 4x4-pixel images but" in error_on_the_command_line(
        lambda: data.check_model_fits(saved_model(own), bigger))


# --- cached_array: a verified copy of anything computed from a data set -------------------------------------


def test_cached_array_computes_once_and_is_verified_and_safe_to_delete(cache_dir):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    first = data.cached_array("deskew abc", compute)
    np.testing.assert_array_equal(data.cached_array("deskew abc", compute), first)
    assert len(calls) == 1 and first.dtype == np.float32
    (copy,) = cache_dir.glob("*.npz")
    content = bytearray(copy.read_bytes())
    content[len(content) // 2] ^= 0xFF
    copy.write_bytes(content)
    np.testing.assert_array_equal(data.cached_array("deskew abc", compute), first)
    assert len(calls) == 2  # the damaged copy was found and made again
    shutil.rmtree(cache_dir)
    np.testing.assert_array_equal(data.cached_array("deskew abc", compute), first)
    data.cached_array("deskew other", lambda: np.zeros(2))
    assert len(calls) == 3 and len(list(cache_dir.glob("*.npz"))) == 2


def test_a_cached_copy_is_never_taken_for_another_key(cache_dir, monkeypatch):
    data.cached_array("one", lambda: np.zeros(2))
    (copy,) = cache_dir.glob("*.npz")
    monkeypatch.setattr(cache, "_path", lambda key: copy)  # every key finds that copy
    np.testing.assert_array_equal(data.cached_array("two", lambda: np.ones(3)), np.ones(3))


@pytest.mark.slow
def test_real_fashion_files_in_a_folder_called_clothes_are_fashion_mnist(fashion_path, tmp_path):
    clothes = tmp_path / "clothes"
    clothes.mkdir()
    for stem in IDX_FILES.values():
        (clothes / f"{stem}.gz").symlink_to(fashion_path / f"{stem}.gz")
    dataset = load_dataset(clothes, "fashion_mnist")
    assert (dataset.name, dataset.class_names) == ("fashion_mnist", FASHION_CLASS_NAMES)
    assert dataset.fingerprint() == datasets.KNOWN["fashion_mnist"].fingerprint


@pytest.mark.slow
def test_real_mnist_given_as_fashion_mnist_is_refused_and_a_fashion_model_refuses_mnist(mnist_path, fashion_path):
    message = error_on_the_command_line(lambda: load_dataset(mnist_path, "fashion_mnist"))
    assert message.startswith(f"{mnist_path / 'mnist.npz'} holds the training images of MNIST, not of Fashion-MNIST")
    mnist = load_dataset(mnist_path)
    assert mnist.fingerprint() == datasets.KNOWN["mnist"].fingerprint
    fashion_model = saved_model(load_dataset(fashion_path, "fashion_mnist"))
    assert "evaluate it with --dataset fashion_mnist and Fashion-MNIST's files" in error_on_the_command_line(
        lambda: data.check_model_fits(fashion_model, mnist))


def test_own_data_that_is_a_known_data_set_gets_its_name_and_class_names(tmp_path, known_tiny_sets):
    folder = write_idx_folder(tmp_path / "my-folder", known_tiny_sets["fashion_mnist"])
    dataset = load_own(folder)
    assert (dataset.name, dataset.class_names) == ("fashion_mnist", FASHION_CLASS_NAMES)
    other = load_own(write_idx_folder(tmp_path / "mnist", mnist_like(x_train=mnist_like()["x_train"] // 2)))
    assert (other.name, other.class_names) == ("mnist", tuple("0123456789"))  # only its folder's name
    data.check_model_fits(saved_model(load_own(folder)), dataset)
    with pytest.raises(SoftmaxError, match="trained on fashion_mnist but this data is mnist"):
        data.check_model_fits(saved_model(dataset), load_own(write_npz(tmp_path / "m.npz", known_tiny_sets["mnist"])))


def test_a_data_sets_fingerprint_is_hashed_once_and_follows_its_arrays(monkeypatch):
    """Hashing MNIST takes about 45 ms and a run asks for the fingerprint three times: once is enough."""
    import hashlib

    arrays = mnist_like()
    dataset = data.make_dataset("mnist", arrays, {key: key for key in arrays}, "here")
    made, real = [], hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: made.append(1) or real(*a))
    first = dataset.fingerprint()
    assert dataset.fingerprint() == first and len(made) == 1
    other = dataclasses.replace(dataset, x_train=255 - dataset.x_train)  # other arrays, another digest
    assert other.fingerprint() != first


# Tables: a CSV's bad rows refused in one line naming the line and the column; the split the same every time.

def write_csv(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def table_rows(n=50, seed=0):
    """Return CSV text of n rows of two features and a target of three classes, separable by x1."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,target"]
    for i in range(n):
        label = i % 3
        lines.append(f"{label * 5 + rng.normal():.4f},{rng.normal():.4f},{label}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, phrases", [
    ("", ["is empty"]),
    ("x1,x2,target\n", ["a header but no rows"]),
    ("x1,x2,target\n1,2,0\n3,,1\n", ["line 3, column 'x2'", "missing", "not a number"]),
    ("x1,x2,target\n1,2,0\n3,abc,1\n", ["line 3, column 'x2'", "'abc'"]),
    ("x1,x2,target\n1,2,0\n3,4\n", ["line 3:", "2 values but the header has 3"]),
    ("x1,x2,target\n1,2,0\n3,4,0,5\n", ["line 3:", "4 values"]),
    ("x1,x2,target\n1,2,0\n3,4,0\n5,6,0\n", ["one class ('0')"]),
    ("x1,x2,y\n1,2,0\n3,4,1\n", ["no column called target or label"]),
    ("x1,x2,target\n1,2,0\n3,nan,1\n", ["line 3, column 'x2'", "not a finite number"]),
    ("x1,x2,target\n1,2,\n3,4,1\n", ["line 2, column 'target'", "label is missing"]),
])
def test_a_bad_csv_is_refused_naming_the_line_and_column(tmp_path, text, phrases):
    path = write_csv(tmp_path, text)
    with pytest.raises(SoftmaxError) as error:
        load_dataset(path, name=None)
    message = str(error.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message, message


def test_a_csv_names_its_label_column_with_target_and_an_unknown_one_is_refused(tmp_path):
    path = write_csv(tmp_path, "kind,x1,x2\na,1,2\nb,3,4\na,1,2\nb,3,5\na,0,2\nb,4,4\n")
    dataset = load_dataset(path, name=None, target="kind")
    assert dataset.feature_names == ("x1", "x2")
    assert dataset.class_names == ("a", "b")
    with pytest.raises(SoftmaxError, match="no column 'species'"):
        load_dataset(path, name=None, target="species")


def test_a_csv_is_split_seeded_and_stratified_the_same_every_time(tmp_path):
    path = write_csv(tmp_path, table_rows(100))
    first, second = load_dataset(path, name=None), load_dataset(path, name=None)
    assert first.is_table and first.feature_names == ("x1", "x2") and first.class_names == ("0", "1", "2")
    assert first.x_train.dtype == np.float32 and first.x_train.shape == (79, 2)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    np.testing.assert_array_equal(np.bincount(first.y_test), [7, 7, 7])  # 20 % of each class (34, 33, 33), rounded
    assert first.split["seed"] == 0 and first.split["test_fraction"] == 0.2 and first.split["rows"] == 100
    assert first.fingerprint() == second.fingerprint()


def test_string_labels_become_class_names_and_numeric_ones_sort_as_numbers(tmp_path):
    numeric = write_csv(tmp_path, "x,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate([10, 2, 10, 2, 10, 2])))
    assert load_dataset(numeric, name=None).class_names == ("2", "10")
    named = write_csv(tmp_path, "x,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate("ababab")), "named.csv")
    assert load_dataset(named, name=None).class_names == ("a", "b")


def test_an_npz_of_feature_rows_of_any_width_is_a_table(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), np.arange(60) % 2
    np.savez(tmp_path / "rows.npz", x=x, y=y)
    dataset = load_dataset(tmp_path / "rows.npz", name=None)
    assert dataset.is_table and dataset.feature_names == ("x0", "x1", "x2") and len(dataset.y_test) == 12
    np.savez(tmp_path / "split.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    given = load_dataset(tmp_path / "split.npz", name=None)
    assert given.is_table and given.split is None and len(given.y_test) == 20


def test_a_csv_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from softmax_cli.data import formats

    monkeypatch.setattr(formats, "MAX_TABLE_BYTES", 100)
    path = write_csv(tmp_path, table_rows(50))
    with pytest.raises(SoftmaxError, match="more than the 100 a CSV data set may have"):
        load_dataset(path, name=None)

"""Tests of safe_io: only regular files are read, within bounds; .npz members are inflated no further than declared;
files are written atomically and never over a file the command reads or a file of another kind."""

import io
import os
import pickle
import struct
import threading
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from softmax_cli import safe_io
from softmax_cli.errors import SoftmaxError

BOUNDS = {"max_member_bytes": 2**20, "max_total_bytes": 2**21}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """Return a zip archive of (name, data as stored, method, declared size, CRC-32) members, sizes as declared."""
    out, directory = bytearray(), bytearray()
    for name, data, method, declared, crc in members:
        encoded = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0, crc, len(data), declared, len(encoded), 0)
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, len(out))
                      + encoded)
        out += b"PK\x03\x04" + fields + encoded + data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(out), 0)
    return bytes(out + directory + end)


def deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def read_error(path, **bounds) -> SoftmaxError:
    with pytest.raises(SoftmaxError) as caught:
        safe_io.read_npz(path, "the model file", **{**BOUNDS, **bounds})
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    return caught.value


# --- regular files only, bounded reads ----------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            safe_io.read_npz(fifo, "the model file", **BOUNDS)
        except SoftmaxError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=read, daemon=True)  # a hang must fail the test, not stop it
    reader.start()
    reader.join(timeout=10)
    assert outcome == [f"the model file {fifo} is not a regular file (a FIFO): give the path of a file"]


@pytest.mark.parametrize("read", [
    lambda path: safe_io.read_bytes(path, 100, "the config file"),
    lambda path: safe_io.read_text(path, 100, "the config file"),
    lambda path: safe_io.read_npz(path, "the config file", **BOUNDS),
])
def test_dev_zero_is_refused_as_a_device_without_reading_it(read):
    with pytest.raises(SoftmaxError, match=r"^the config file /dev/zero is not a regular file \(a device\)"):
        read("/dev/zero")


def test_a_folder_and_a_missing_file_are_one_line_each(tmp_path):
    with pytest.raises(SoftmaxError, match="is a folder: give the path of a file"):
        safe_io.read_bytes(tmp_path, 100, "the config file")
    with pytest.raises(safe_io.NotFound, match=f"^the config file {tmp_path / 'x.toml'} does not exist$"):
        safe_io.read_bytes(tmp_path / "x.toml", 100, "the config file")


def test_a_file_over_the_limit_is_refused_and_one_at_the_limit_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"a" * 100)
    assert safe_io.read_bytes(path, 100, "the config file") == b"a" * 100
    path.write_bytes(b"a" * 101)
    with pytest.raises(SoftmaxError, match="is larger than the 100 bytes such a file may be"):
        safe_io.read_bytes(path, 100, "the config file")


def test_text_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"lr = 0.1\n\xff\xfe")
    with pytest.raises(SoftmaxError, match=r"the config file .*c.toml is not text \(UTF-8\): byte 9 is not"):
        safe_io.read_text(path, 100, "the config file")
    path.write_text("lr = 0.1\n")
    assert safe_io.read_text(path, 100, "the config file") == "lr = 0.1\n"


# --- .npz: what is read, and what is refused ----------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_arrays_come_back_exactly(tmp_path, save):
    arrays = {"W": np.arange(12, dtype=">f8").reshape(3, 4), "F": np.asfortranarray(np.arange(6).reshape(2, 3)),
              "labels": np.array(["cat", "dog"]), "empty": np.zeros((0, 5), np.uint8), "flag": np.array(True)}
    save(tmp_path / "a.npz", **arrays)
    loaded = safe_io.read_npz(tmp_path / "a.npz", "the data file", **BOUNDS)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)
    assert loaded["W"].flags.writeable  # checkpoints go on training in these arrays


def test_only_the_named_members_are_read(tmp_path):
    packed = bz2_member("other.npy", npy(np.zeros(3)))
    path = tmp_path / "a.npz"
    path.write_bytes(raw_zip([("W.npy", npy(np.ones(2)), 0, len(npy(np.ones(2))), zlib.crc32(npy(np.ones(2)))),
                              packed]))
    assert list(safe_io.read_npz(path, "the data file", **BOUNDS, names={"W", "x"})) == ["W"]


def bz2_member(name: str, data: bytes):
    import bz2
    return name, bz2.compress(data), zipfile.ZIP_BZIP2, len(data), zlib.crc32(data)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_members_are_refused_before_decompressing(tmp_path, method, monkeypatch):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("W.npy", npy(np.zeros((784, 10), np.float32)))

    def no_decompressing(*args, **kwargs):
        raise AssertionError("a member was decompressed")

    monkeypatch.setattr(zipfile, "_get_decompressor", no_decompressing)
    error = read_error(path)
    assert error.reason == f"W.npy is compressed with method {method}; only stored and deflated members are read"


def deflated_zeros(mib: int, prefix: bytes = b"") -> bytes:
    """Return prefix and then mib MiB of zeros, deflated at about 1000:1 in no time: one flushed block of 1 MiB of
    zeros repeated (it refers back only to zeros), then an empty last block."""
    packer, zeros = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS), bytes(2**20)
    first = packer.compress(prefix) + packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
    again = packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
    return first + again * (mib - 1) + b"\x03\x00"


@pytest.fixture(scope="module")
def deflate_bomb() -> bytes:
    """Return 3 GiB of zeros in 3 MB of deflate."""
    return deflated_zeros(3 * 1024)


def test_a_deflate_bomb_declaring_a_small_size_is_refused_quickly_with_little_memory(tmp_path, deflate_bomb):
    declared = 31_440 + 128  # MNIST's W and its .npy header
    path = tmp_path / "model.npz"
    path.write_bytes(raw_zip([("W.npy", deflate_bomb, zipfile.ZIP_DEFLATED, declared, 0)]))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = read_error(path)
        seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.reason == f"damaged archive: W.npy holds more than the {declared} bytes it declares"
    assert peak < 4 * 2**20 and seconds < 2, (peak, seconds)


def test_a_member_longer_than_declared_is_refused_though_zipfile_would_accept_it(tmp_path):
    data = npy(np.arange(500, dtype=np.float64))
    declared = data[:1000]  # what zipfile hands back: cut to the declared size, and the CRC-32 made to match it
    path = tmp_path / "model.npz"
    path.write_bytes(raw_zip([("W.npy", deflated(data), zipfile.ZIP_DEFLATED, len(declared), zlib.crc32(declared))]))
    with zipfile.ZipFile(path) as archive:
        assert archive.read("W.npy") == declared
    assert "W.npy holds more than the 1000 bytes it declares" in read_error(path).reason


@pytest.mark.parametrize("change, reason", [
    (lambda data: (data, zipfile.ZIP_STORED, len(data), 12345), "bad CRC-32 for W.npy"),
    (lambda data: (deflated(data)[:-20], zipfile.ZIP_DEFLATED, len(data), zlib.crc32(data)), "W.npy is cut short"),
    (lambda data: (deflated(data), zipfile.ZIP_DEFLATED, len(data) + 8, zlib.crc32(data)),
     f"W.npy holds {len(npy(np.arange(500.0)))} bytes, not the {len(npy(np.arange(500.0))) + 8} it declares"),
    (lambda data: (data, zipfile.ZIP_STORED, len(data) - 1, zlib.crc32(data)), "has two different sizes"),
])
def test_damaged_members_are_refused(tmp_path, change, reason):
    path = tmp_path / "model.npz"
    path.write_bytes(raw_zip([("W.npy", *change(npy(np.arange(500.0))))]))
    assert reason in read_error(path).reason


def test_declared_sizes_are_checked_against_the_bounds_before_any_member_is_read(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    np.savez(path, W=np.zeros(1000), b=np.zeros(1000))
    monkeypatch.setattr(safe_io.NpzArchive, "read", lambda *args: pytest.fail("a member was read"))
    assert read_error(path, max_member_bytes=8000).reason == "W would take 8128 bytes, more than the 8000 allowed"
    assert read_error(path, max_total_bytes=10_000).reason == "its members would take more than the 10000 bytes allowed"


class CreatesFolder:
    """Unpickling this runs code: it creates the folder at path."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_pickles_are_never_loaded(tmp_path):
    marker = tmp_path / "code-ran"
    objects = npy(np.array([CreatesFolder(marker)], dtype=object))
    raw_pickle = pickle.dumps(CreatesFolder(marker))
    for data in (objects, raw_pickle):
        path = tmp_path / "a.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("W.npy", data)
        read_error(path)
    assert not marker.exists()
    assert "it holds an array of object (only numbers and text are read" in read_error_for(tmp_path, objects).reason


def read_error_for(tmp_path, member: bytes) -> SoftmaxError:
    path = tmp_path / "b.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W.npy", member)
    return read_error(path)


@pytest.mark.parametrize("member, reason", [
    (npy(np.zeros(3))[:-8], "an array's data does not match its header (shape (3,), float64)"),
    (b"\x93NUMPY\x03\x00" + bytes(20), "unsupported .npy version (3, 0)"),
    (b"not an npy", "W is not a valid .npy array"),
    (npy(np.zeros(3)).replace(b"{'descr'", b"z'descr'"), "W is not a valid .npy array"),  # numpy: TokenError
    (npy(np.array(b"ab")), "it holds an array of |S2"),
])
def test_npy_headers_that_disagree_with_their_data_are_refused(tmp_path, member, reason):
    assert reason in read_error_for(tmp_path, member).reason


@pytest.mark.parametrize("content", [b"", b"plain text\n", b"PK\x03\x04" + bytes(100)])
def test_what_is_not_a_zip_is_one_line(tmp_path, content):
    path = tmp_path / "a.npz"
    path.write_bytes(content)
    assert read_error(path).reason.startswith("not an .npz archive")


def test_a_zip_asking_for_a_newer_zip_version_is_one_line(tmp_path):
    """zipfile raises NotImplementedError("zip file version 8.4") for such a central directory entry."""
    path = tmp_path / "a.npz"
    np.savez(path, W=np.zeros(3))
    content = bytearray(path.read_bytes())
    entry = content.index(b"PK\x01\x02")
    content[entry + 6:entry + 8] = struct.pack("<H", 84)  # version needed to extract: 8.4
    path.write_bytes(bytes(content))
    assert read_error(path).reason.startswith("not an .npz archive: zip file version 8.4")


# --- writing atomically ---------------------------------------------------------------------------------


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("old")

    def fails(temporary):
        temporary.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(SoftmaxError, match="^cannot write the history to .*history.json: No space left on device$"):
        safe_io.write_atomically(path, fails, "write the history to", example_name="history.json")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["history.json"]

    def breaks(temporary):
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        safe_io.write_atomically(path, breaks, "write the history to")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["history.json"]


def test_a_write_replaces_the_file_whole_with_the_usual_permissions(tmp_path):
    path = tmp_path / "h.csv"
    safe_io.write_atomically(path, lambda temporary: temporary.write_text("new"), "write the history to")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.read_text() == "new" and (path.stat().st_mode & 0o777) == 0o666 & ~umask


# --- destinations -----------------------------------------------------------------------------------------


def is_model(path) -> bool:
    return path.read_bytes().startswith(b"MODEL")


def destination_error(path, **options) -> str:
    with pytest.raises(SoftmaxError) as caught:
        safe_io.check_destination(path, "model file", is_kind=is_model, **options)
    message = str(caught.value)
    assert "\n" not in message and "--model" not in message
    return message


def test_a_new_file_and_a_file_of_the_same_kind_may_be_written(tmp_path):
    safe_io.check_destination(tmp_path / "m.npz", "model file", is_kind=is_model, reads=[tmp_path / "data.npz"])
    (tmp_path / "m.npz").write_bytes(b"MODEL")
    safe_io.check_destination(tmp_path / "m.npz", "model file", is_kind=is_model)


def test_a_file_the_command_reads_is_never_written_over(tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"MODEL")  # even a file of the right kind
    (tmp_path / "link.npz").symlink_to(data)
    os.link(data, tmp_path / "hard.npz")
    for path in (data, tmp_path / "link.npz", tmp_path / "hard.npz", tmp_path / "." / "data.npz"):
        message = destination_error(path, reads=[data])
        assert message == f"the model file {path} is also {data}, which this command reads: " \
                          "choose another name for the model file"


def test_a_folder_a_missing_folder_and_another_kind_of_file_are_refused(tmp_path):
    assert destination_error(tmp_path) == f"the model file {tmp_path} is a folder: give a file name inside it"
    missing = tmp_path / "nowhere" / "m.npz"
    assert destination_error(missing) == (
        f"cannot write the model file {missing}: the folder {missing.parent} does not exist: create it first")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert destination_error(notes) == f"{notes} exists and is not a model file: choose another name"
    assert destination_error(notes / "m.npz").endswith(f"{notes} is not a folder: choose another name")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert destination_error(fifo) == f"{fifo} exists and is not a model file: choose another name"


def test_a_header_is_read_without_inflating_the_member(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (3, 2**30)})
    path = tmp_path / "data.npz"
    packed = deflated_zeros(3 * 1024, header.getvalue())
    path.write_bytes(raw_zip([("x_train.npy", packed, zipfile.ZIP_DEFLATED, len(header.getvalue()) + 3 * 2**30, 0)]))
    tracemalloc.start()
    try:
        with safe_io.open_npz(path, "the data file", max_member_bytes=2**33, max_total_bytes=2**33) as archive:
            assert archive.header("x_train") == ((3, 2**30), np.dtype(np.uint8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20

"""Reading untrusted files and writing files safely: the one way in and the one way out for every file.

In: only regular files are opened (a FIFO would hang, /dev/zero never ends), never more bytes than the caller's
bound, and an .npz is read member by member from its zip directory: stored or deflated members only, each
declared size checked against the bounds before anything is decompressed, decompressed in bounded chunks and
never past its declared size, its .npy header parsed without pickle. Out: every file is written to a temporary
file beside it and renamed into place, so a crash leaves the old file or the new one; and before any long work
a destination is checked never to be a file the same command reads, a folder, or someone else's file.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import SoftmaxError, one_line

READ_CHUNK = 2**20  # compressed bytes read, and decompressed bytes made, at a time
NPY_HEADER_BYTES = 16 * 1024  # more than any .npy header numpy reads (it refuses headers over 10,000 bytes)
NPY_DTYPE_KINDS = "biufU"  # booleans, integers, floats, complex numbers and text: never objects, never pickles
# what zipfile raises on junk (NotImplementedError: a "version needed to extract" above the one it knows)
_NOT_A_ZIP = (zipfile.BadZipFile, ValueError, struct.error, EOFError, OverflowError, NotImplementedError)
# What numpy's .npy header readers raise on junk: headers that are not Python literals (SyntaxError, or TokenError
# from its Python 2 fallback), nest too deeply (RecursionError) or describe nonsense (ValueError, TypeError, ...).
_NOT_AN_NPY_HEADER = (ValueError, SyntaxError, tokenize.TokenError, TypeError, LookupError, RecursionError,
                      MemoryError, OverflowError, EOFError)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature ... name length, extra length


class NotFound(SoftmaxError):
    """There is no file at the path; callers may add what to do (train a model first, check the path)."""


class DamagedFile(SoftmaxError):
    """The file is there but is not what it should be; .reason says how, without the path, for callers to rephrase."""

    def __init__(self, path, what: str, reason: str):
        super().__init__(f"{what} {path} is damaged or not an .npz file ({reason})")
        self.reason = reason


def open_regular(path, what: str) -> BinaryIO:
    """Return the regular file at path opened for reading in binary; anything else is one SoftmaxError line.

    Opened without blocking, so that a FIFO is refused instead of waiting for a writer; what says what the file
    is meant to be ("the model file") and begins every message.
    """
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except OSError as e:
        raise SoftmaxError(f"cannot read {what} {path}: {e.strerror or e}") from None
    mode = os.fstat(handle).st_mode
    if not stat.S_ISREG(mode):
        os.close(handle)
        if stat.S_ISDIR(mode):
            raise SoftmaxError(f"{what} {path} is a folder: give the path of a file")
        raise SoftmaxError(f"{what} {path} is not a regular file ({_file_type(mode)}): give the path of a file")
    return os.fdopen(handle, "rb")


def _file_type(mode: int) -> str:
    """Return what a file that is not a regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def read_bytes(path, limit: int, what: str) -> bytes:
    """Return the content of the regular file at path, refusing one of more than limit bytes without reading it."""
    with open_regular(path, what) as file:
        too_big = SoftmaxError(f"{what} {path} is larger than the {limit:,} bytes such a file may be: "
                               f"give the right file")
        if os.fstat(file.fileno()).st_size > limit:
            raise too_big
        try:
            content = file.read(limit + 1)  # the file may grow while it is read
        except OSError as e:
            raise SoftmaxError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(content) > limit:
        raise too_big
    return content


def read_text(path, limit: int, what: str) -> str:
    """Return the UTF-8 text of the regular file at path, of at most limit bytes."""
    try:
        return read_bytes(path, limit, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise SoftmaxError(f"{what} {path} is not text (UTF-8): byte {e.start} is not; give the right file") from None


class NpzArchive:
    """An .npz file opened for reading: its members' names and declared sizes, each read only when asked for."""

    def __init__(self, file: BinaryIO, path, what: str, max_member_bytes: int, max_total_bytes: int):
        self._file, self._path, self._what = file, path, what
        try:
            entries = zipfile.ZipFile(file).infolist()  # the central directory only: no member is read
        except OSError as e:
            raise SoftmaxError(f"cannot read {what} {path}: {e.strerror or e}") from None
        except _NOT_A_ZIP as e:
            raise self._damaged(f"not an .npz archive: {one_line(e)}") from None
        self.members = {entry.filename.removesuffix(".npy"): entry for entry in entries}
        if len(self.members) != len(entries):
            raise self._damaged("it holds the same member name twice")
        for name, entry in self.members.items():
            if entry.file_size > max_member_bytes:
                raise self._damaged(
                    f"{name} would take {entry.file_size} bytes, more than the {max_member_bytes} allowed")
        if sum(entry.file_size for entry in entries) > max_total_bytes:
            raise self._damaged(f"its members would take more than the {max_total_bytes} bytes allowed")

    @property
    def names(self) -> list[str]:
        """The members' names without ".npy", in the archive's order."""
        return list(self.members)

    def read(self, name: str) -> np.ndarray:
        """Return the array in member name, decompressed no further than its declared size, never unpickled."""
        data = self._member_bytes(self._npy_entry(name))
        shape, fortran_order, dtype, offset = self._parse_header(name, data)
        if math.prod(shape) * dtype.itemsize != len(data) - offset:
            raise self._damaged(f"an array's data does not match its header (shape {shape}, {dtype})")
        array = np.frombuffer(data, dtype, offset=offset)  # the member's own buffer: no copy
        return array.reshape(shape, order="F" if fortran_order else "C")

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """Return the shape and dtype member name declares, decompressing only its first few kilobytes.

        So that a caller can refuse an absurd array (two images of 30000x30000 pixels) before it is inflated.
        """
        data = self._member_bytes(self._npy_entry(name), limit=NPY_HEADER_BYTES)
        shape, _, dtype, _ = self._parse_header(name, data)
        return shape, dtype

    def _npy_entry(self, name: str) -> zipfile.ZipInfo:
        entry = self.members[name]
        if not entry.filename.endswith(".npy"):
            raise self._damaged(f"member {entry.filename} is not a .npy array")
        return entry

    def _damaged(self, reason: str) -> DamagedFile:
        return DamagedFile(self._path, self._what, reason)

    def _member_bytes(self, entry: zipfile.ZipInfo, limit: int | None = None) -> bytearray:
        """Return a member's bytes, checked against its declared size and CRC-32, reading a chunk at a time.

        With limit, only its first limit bytes, unchecked: enough for a header.
        """
        if entry.flag_bits & 0x1:
            raise self._damaged(f"damaged archive: {entry.filename} is marked encrypted")
        if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # zipfile would decompress bzip2 and lzma whole, however large, before any size could be checked.
            raise self._damaged(f"{entry.filename} is compressed with method {entry.compress_type}; "
                                "only stored and deflated members are read")
        try:
            self._file.seek(entry.header_offset)
            signature, name_length, extra_length = _LOCAL_HEADER.unpack(self._file.read(_LOCAL_HEADER.size))
            if signature != b"PK\x03\x04":
                raise self._damaged(f"damaged archive: {entry.filename} has no local header")
            self._file.seek(name_length + extra_length, os.SEEK_CUR)
            if entry.compress_type == zipfile.ZIP_DEFLATED:
                data = self._inflate(entry, entry.file_size if limit is None else min(limit, entry.file_size))
            else:
                data = self._copy(entry, entry.file_size if limit is None else min(limit, entry.file_size))
        except (OSError, struct.error, zlib.error, ValueError, OverflowError) as e:
            raise self._damaged(f"damaged archive: {one_line(e)}") from None
        if limit is None and zlib.crc32(data) != entry.CRC:
            raise self._damaged(f"damaged archive: bad CRC-32 for {entry.filename}")
        return data

    def _compressed_chunks(self, entry: zipfile.ZipInfo, wanted: int) -> Iterable[bytes]:
        """Yield a member's stored bytes a chunk at a time; small chunks when only its header is wanted."""
        left, size = entry.compress_size, READ_CHUNK if wanted == entry.file_size else NPY_HEADER_BYTES
        while left > 0:
            chunk = self._file.read(min(size, left))
            if not chunk:
                raise self._damaged(f"damaged archive: {entry.filename} is cut short")
            left -= len(chunk)
            yield chunk

    def _copy(self, entry: zipfile.ZipInfo, wanted: int) -> bytearray:
        """Return the first wanted bytes of a stored member."""
        if entry.compress_size != entry.file_size:
            raise self._damaged(f"damaged archive: stored member {entry.filename} has two different sizes")
        data = bytearray(wanted)
        view, filled = memoryview(data), 0
        while filled < wanted:  # straight into the array's buffer: one copy of a large member, not two
            count = self._file.readinto(view[filled:])
            if not count:
                raise self._damaged(f"damaged archive: {entry.filename} is cut short")
            filled += count
        view.release()
        return data

    def _inflate(self, entry: zipfile.ZipInfo, wanted: int) -> bytearray:
        """Return the first wanted bytes of a deflated member; all of them must be exactly its declared size."""
        too_long = self._damaged(f"damaged archive: {entry.filename} holds more than the "
                                 f"{entry.file_size} bytes it declares")
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = bytearray()
        for chunk in self._compressed_chunks(entry, wanted):
            while not inflater.eof:
                # One byte past the declared size is enough to know the member lies about it.
                made = inflater.decompress(chunk, min(READ_CHUNK, wanted + 1 - len(data)))
                data += made
                if len(data) > entry.file_size:
                    raise too_long
                if len(data) >= wanted < entry.file_size:
                    return data[:wanted]
                chunk = inflater.unconsumed_tail
                if not (chunk or made):  # this chunk is used up, and nothing of it waits to come out
                    break
        if not inflater.eof:
            raise self._damaged(f"damaged archive: {entry.filename} is cut short")
        if len(data) != entry.file_size:
            raise self._damaged(f"damaged archive: {entry.filename} holds {len(data)} bytes, "
                                f"not the {entry.file_size} it declares")
        return data

    def _parse_header(self, name: str, data: bytearray) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        """Return the shape, order, dtype and data offset a .npy member's header gives, refusing objects."""
        stream = _Reader(data)
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise self._damaged(f"unsupported .npy version {version}")
        except _NOT_AN_NPY_HEADER as e:
            raise self._damaged(f"{name} is not a valid .npy array: {one_line(e)}") from None
        if dtype.hasobject or dtype.kind not in NPY_DTYPE_KINDS:
            raise self._damaged(
                f"it holds an array of {dtype} (only numbers and text are read, never pickled objects)")
        if any(n < 0 for n in shape):
            raise self._damaged(f"an array's data does not match its header (shape {shape}, {dtype})")
        return shape, fortran_order, dtype, stream.offset


class _Reader:
    """The little of a binary file numpy's header readers need, over bytes, remembering how far they read."""

    def __init__(self, data: bytearray):
        self._data, self.offset = data, 0

    def read(self, size: int) -> bytes:
        chunk = bytes(self._data[self.offset : self.offset + size])
        self.offset += len(chunk)
        return chunk


@contextlib.contextmanager
def open_npz(path, what: str, *, max_member_bytes: int, max_total_bytes: int):
    """Yield the NpzArchive of the regular file at path, whose declared member sizes are within the bounds."""
    with open_regular(path, what) as file:
        yield NpzArchive(file, path, what, max_member_bytes, max_total_bytes)


def read_npz(path, what: str, *, max_member_bytes: int, max_total_bytes: int,
             names: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Return the arrays of the .npz at path by name (only those in names, when given: others are not read).

    The one reader of untrusted .npz files (models, checkpoints, data): any problem is one SoftmaxError line, a
    DamagedFile when the file's content is at fault.
    """
    with open_npz(path, what, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes) as archive:
        return {name: archive.read(name) for name in archive.names if names is None or name in names}


def zip_member_names(path) -> list[str] | None:
    """Return the member names of the zip archive at path, or None if it is not a regular file holding one."""
    try:
        with open_regular(path, "the file") as file:
            return zipfile.ZipFile(file).namelist()
    except (SoftmaxError, OSError, *_NOT_A_ZIP):
        return None


def write_atomically(path, write: Callable[[Path], None], action: str, example_name: str = "model.npz",
                     suffix: str = ".tmp") -> None:
    """Call write on a temporary file beside path, then rename it onto path; returns None.

    write(temporary) writes the whole content to the file of that name (its name ends in suffix). The file
    is flushed to disk, given the permissions of any new file, and renamed onto path, and the folder is
    flushed too: a failure or a crash at any moment leaves either the old file or the new one at path, never
    half of one. Any problem, and a path that is a folder (example_name is the file name the message
    suggests inside it) or lies in a missing folder, is one SoftmaxError line, "cannot {action} {path}: ...".
    A path that is a symbolic link to a file is written through: the file it names is replaced, the link stays.
    """
    target = _written(Path(path))
    folder = target.parent
    if target.is_dir():
        raise SoftmaxError(f"cannot {action} {path}: it is a folder; give a file name such as {target / example_name}")
    if not folder.is_dir():
        raise SoftmaxError(f"cannot {action} {path}: the folder {folder} does not exist; create it first")
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
        os.close(handle)  # write opens the file by name: Keras 3, for one, saves only to a name ending in .keras
        write(Path(temporary))
        with open(temporary, "rb+") as file:  # opened for writing: Windows cannot flush a read-only handle
            os.fsync(file.fileno())
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
        _fsync_folder(folder)
    except OSError as e:
        raise SoftmaxError(f"cannot {action} {path}: {e.strerror or e}") from None
    finally:
        # Whatever stopped us (an error, Ctrl-C), never leave a half-written file behind; after the
        # rename the temporary name is already gone.
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _new_file_mode() -> int:
    """Return the permissions open() gives a new file (0o666 less the umask); mkstemp's 0o600 would hide the model."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file to disk, so the rename survives a power cut."""
    if os.name != "posix":  # Windows cannot open a folder; NTFS journals the rename itself
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def check_destination(path, kind: str, *, reads: Iterable = (), is_kind: Callable[[Path], bool] | None = None) -> None:
    """Return None if a file of this kind may be written at path; raise SoftmaxError, before any work, if not.

    Refused: a path that is one of the files the same command reads (reads, compared as files: also through a
    symbolic or hard link), a folder, a path in a missing folder, and an existing file that is not of the kind
    being written (is_kind(path) false; without is_kind, anything but a regular file). The advice never suggests
    writing over the user's file.
    """
    target = Path(path)
    if target.is_dir():
        raise SoftmaxError(f"the {kind} {path} is a folder: give a file name inside it")
    folder = target.parent
    if not folder.exists():
        raise SoftmaxError(f"cannot write the {kind} {path}: the folder {folder} does not exist: create it first")
    if not folder.is_dir():
        raise SoftmaxError(f"cannot write the {kind} {path}: {folder} is not a folder: choose another name")
    for read in reads:
        if _same_file(target, Path(read)):
            raise SoftmaxError(f"the {kind} {path} is also {read}, which this command reads: "
                               f"choose another name for the {kind}")
    if target.is_symlink() and not target.exists():
        raise SoftmaxError(f"the {kind} {path} is a symbolic link to {os.readlink(target)}, which does not exist: "
                           "choose another name, or remove the link")
    if target.exists() or target.is_symlink():
        if not target.is_file() or (is_kind is not None and not is_kind(target)):
            raise SoftmaxError(f"{path} exists and is not a {kind}: choose another name")
    _check_writable(_written(target).parent, f"cannot write the {kind} {path}")


def _written(path: Path) -> Path:
    """Return the file a write to path replaces: the file a symbolic link names (so the link stays), else path."""
    return Path(os.path.realpath(path)) if path.is_symlink() and path.exists() else path


def _check_writable(folder: Path, doing: str) -> None:
    """Raise SoftmaxError unless a file can be created in folder (as an atomic write creates its temporary file
    there): a read-only folder or file system is said before the work, not after it."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".softmax-check-")
    except OSError as e:
        raise SoftmaxError(f"{doing}: {e.strerror or e} in {folder}: choose a folder you can write to") from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _same_file(one: Path, other: Path) -> bool:
    """Return whether two paths name one file: the same resolved path, or the same file through a hard link."""
    with contextlib.suppress(OSError):
        if os.path.samefile(one, other):
            return True
    with contextlib.suppress(OSError, RuntimeError):
        return one.resolve() == other.resolve()
    return False

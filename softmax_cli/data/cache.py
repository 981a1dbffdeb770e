"""The cache: fast uncompressed copies of local data sets, and of arrays computed from them (e.g. deskewed images).

Everything in it is verified on every read (each .npz member carries a CRC-32, each copy the key it was made
for and a SHA-256 of its arrays, so that a copy edited and saved again, CRCs and key intact, is not trusted),
written atomically, and safe to delete: what is missing or damaged is made again from the source. It lives
in $SOFTMAX_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) under softmax-cli/.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import safe_io
from ..errors import SoftmaxError
from .formats import MAX_ARRAY_BYTES

CACHE_VERSION = b"softmax-cli data cache 3"
KEY_MEMBER = "cache_key"  # each copy holds the key it was made for, so a copy is never taken for another
DIGEST_MEMBER = "cache_digest"  # and the digest of its arrays, checked on every read


def cache_dir() -> Path:
    """Return the folder for cached copies: $SOFTMAX_CACHE_DIR, else the user's cache folder."""
    if os.environ.get("SOFTMAX_CACHE_DIR"):
        return Path(os.environ["SOFTMAX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softmax-cli"


def source_key(files: list[Path]) -> str:
    """Return a key naming these files by their place, size, time and content: a changed file gets a new key."""
    key = hashlib.sha256()
    for file in files:
        stat = file.stat()
        key.update(f"\0{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with safe_io.open_regular(file, "the data file") as stream:
            while chunk := stream.read(2**20):
                key.update(chunk)
    return key.hexdigest()


def read(key: str) -> dict[str, np.ndarray] | None:
    """Return the arrays cached under key, or None when there is no sound copy (a damaged one is deleted)."""
    path = _path(key)
    if path is None or not path.exists():
        return None
    try:
        arrays = safe_io.read_npz(path, "the cached copy", max_member_bytes=MAX_ARRAY_BYTES,
                                  max_total_bytes=4 * MAX_ARRAY_BYTES)
        if str(arrays.pop(KEY_MEMBER, None)) != key:
            raise SoftmaxError("made for another key")
        if str(arrays.pop(DIGEST_MEMBER, None)) != _digest(key, arrays):
            raise SoftmaxError("its arrays are not those it was made with")
        return arrays
    except SoftmaxError:
        with contextlib.suppress(OSError):  # a damaged copy is never used: the source makes it again
            path.unlink()
        return None


def write(key: str, arrays: dict[str, np.ndarray]) -> None:
    """Keep arrays under key as an uncompressed .npz, atomically; a cache that cannot be written is skipped.

    Not safe_io.write_atomically: a copy needs neither its flushes to disk (a damaged copy is found and made
    again) nor its usual permissions (mkstemp's owner-only ones keep a copy of private data private).
    """
    path = _path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays, **{KEY_MEMBER: np.array(key), DIGEST_MEMBER: np.array(_digest(key, arrays))})
        os.replace(temporary, path)
    except OSError:
        pass  # a copy that cannot be written only costs speed
    finally:
        # Whatever stopped the write (an error, Ctrl-C), leave no half-written copy; after the rename it is gone.
        with contextlib.suppress(OSError):
            Path(temporary).unlink(missing_ok=True)


def cached_array(key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the array cached under key, else compute() after keeping it in the cache for next time.

    key must name everything the array depends on, e.g. f"deskew {dataset.fingerprint()}".
    """
    arrays = read(key)
    if arrays is not None and set(arrays) == {"array"}:
        return arrays["array"]
    array = np.asarray(compute())
    write(key, {"array": array})
    return array


def _digest(key: str, arrays: dict[str, np.ndarray]) -> str:
    """Return the SHA-256 of key and of every array's name, type, shape and bytes."""
    digest = hashlib.sha256(key.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array if array.dtype.kind != "O" else repr(array.tolist()).encode())
    return digest.hexdigest()


def _path(key: str) -> Path | None:
    """Return the file that holds the copy for key (None: there is no home folder to keep a cache in)."""
    name = hashlib.sha256(CACHE_VERSION + key.encode()).hexdigest()[:40]
    try:
        return cache_dir() / f"{name}.npz"
    except RuntimeError:
        return None

"""Where the images come from (keras.datasets, scikit-learn's digits, a local .npz or IDX folder) and their checks.

Every source ends in `_make_dataset`, so a Keras download, a bundled set and a user's file pass the same checks.
A local source is read once and then kept as an uncompressed .npz under the user's cache folder, which loads
several times faster than the compressed original; that copy is checked on every read and safe to delete.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DATASETS
from .errors import SoftmaxError
from .export import import_keras
from .images import MNIST_BOX, MNIST_SIDE
DAMAGED_FILE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, LookupError, TypeError,
                       RuntimeError, SyntaxError, OverflowError, MemoryError)

FASHION_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_MAGIC = {"x": 2051, "y": 2049}  # 0x0803: unsigned bytes in 3 dimensions; 0x0801: in 1 dimension
EXPECTED_SOURCE = "a Keras .npz (x_train, y_train, x_test, y_test) or a folder with the four IDX files"
CACHE_VERSION = b"softmax-cli data cache 1"
MAX_LABEL = 2**31 - 1  # far more classes than any data set has names for
MAX_IDX_BYTES = 2 * 2**30  # over 40 times MNIST's training images: an IDX header claiming more is damaged or a bomb
READ_CHUNK = 2**20  # IDX data is read this many bytes at a time, so memory grows with the data, not the header's claim
CONVENTION_SAMPLE = 1000  # training images measured to tell how a data set frames its objects
# An object spanning more of the frame than midway between MNIST's box (20/28) and the whole frame fills it.
FILLS_FRAME = (MNIST_BOX / MNIST_SIDE + 1) / 2


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of grayscale images with integer labels, checked and ready to train on."""

    name: str
    x_train: np.ndarray  # uint8, (n_train, height, width), 0..255
    y_train: np.ndarray  # int64, (n_train,), 0..n_classes-1
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # where it was read from, for messages and the model file

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.x_train.shape[1:]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        return math.prod(self.image_shape)

    def fingerprint(self) -> str:
        """Return a digest of the training images and labels: equal for the same data, wherever it was read from."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train):  # always uint8 and int64 (see _pixels and _labels)
            digest.update(f"{array.shape}".encode())
            digest.update(np.ascontiguousarray(array))
        return digest.hexdigest()

    def image_convention(self) -> str:
        """Return how the images frame their object, which predict must repeat: "mnist" or "fill" (see images.py).

        "fill" when, in the median of about CONVENTION_SAMPLE evenly spaced training images that are not blank, the
        bounding box of the pixels at least half as bright as the brightest spans more than FILLS_FRAME of the frame
        on its longer side. Measured: MNIST 0.71 (its 20/28 box), Fashion-MNIST 0.96, scikit-learn's digits 1.
        """
        sample = self.x_train[:: max(1, len(self.x_train) // CONVENTION_SAMPLE)]  # spaced: a set may be sorted
        sample = sample[sample.max(axis=(1, 2)) > 0]
        if not len(sample):
            return "mnist"
        peak = sample.max(axis=(1, 2), keepdims=True)
        ink = sample >= peak - peak // 2  # half the peak, rounded up, in uint8: no float copy of the sample
        extent = np.maximum(_spanned_fraction(ink.any(axis=2)), _spanned_fraction(ink.any(axis=1)))
        return "fill" if np.median(extent) > FILLS_FRAME else "mnist"


def load_dataset(path: str | os.PathLike | None = None, name: str = "mnist") -> Dataset:
    """Return the data set at path (a Keras .npz, or a folder holding one or four IDX files), else the named one."""
    if path is not None:
        return _load_local(Path(path), name)
    if name == "digits":
        return _load_digits()
    if name in ("mnist", "fashion_mnist"):
        return _load_keras(name)
    raise SoftmaxError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}, or pass --data PATH")


def _spanned_fraction(present: np.ndarray) -> np.ndarray:
    """Return, for each row of booleans (each with a True), the fraction of it from its first True to its last."""
    first = present.argmax(axis=1)
    last = present.shape[1] - 1 - present[:, ::-1].argmax(axis=1)
    return (last - first + 1) / present.shape[1]


def _load_keras(name: str) -> Dataset:
    """Return MNIST or Fashion-MNIST through keras.datasets, which downloads it once into ~/.keras/datasets."""
    title = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[name]
    advice = "pass --data PATH or set SOFTMAX_DATA to a local copy (a Keras .npz or a folder with the four IDX files)"
    try:
        keras_dataset = getattr(import_keras().datasets, name)
    except ImportError as e:
        raise SoftmaxError(f"cannot download {title}: keras is not importable ({e}); {advice}") from None
    try:
        # Keras reports download progress on stdout, which belongs to the command's own output.
        with contextlib.redirect_stdout(sys.stderr):
            (x_train, y_train), (x_test, y_test) = keras_dataset.load_data()
    except Exception as e:  # Keras raises a bare Exception("URL fetch failure ...") when offline
        reason = " ".join(str(e).split())
        message = f"could not download {title} through keras.datasets (no network? {reason}): {advice}"
        raise SoftmaxError(message) from None
    arrays = dict(zip(KEYS, (x_train, y_train, x_test, y_test)))
    source = f"keras.datasets.{name}"
    class_names = FASHION_CLASS_NAMES if name == "fashion_mnist" else None
    return _make_dataset(name, arrays, {key: f"{source} ({key})" for key in KEYS}, source, class_names)


def _load_digits() -> Dataset:
    """Return scikit-learn's bundled 8x8 digits, scaled to 0..255 and split 75/25 by class, the same every time."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # the set's pixels run 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    arrays = dict(zip(KEYS, (x_train, y_train, x_test, y_test)))
    source = "sklearn.datasets.load_digits"
    return _make_dataset("digits", arrays, {key: f"{source} ({key})" for key in KEYS}, source)


def _load_local(path: Path, name: str) -> Dataset:
    """Return the data set in a local .npz or folder, from the verified fast copy in the cache when there is one."""
    source = _find_source(path, name)
    files = [source] if isinstance(source, Path) else list(source.values())
    shown = str(source if isinstance(source, Path) else path)
    first = files[0].resolve()  # resolved, like the cache key, so a cached copy has the same class names
    is_fashion = "fashion" in f"{first.parent.name} {first.name}".lower()
    class_names = FASHION_CLASS_NAMES if is_fashion else None
    file_name = path.resolve().stem if path.is_file() else path.resolve().name
    # Named as --dataset names it, so that evaluate's default (the model's data set) reads the same data.
    dataset_name = "fashion_mnist" if is_fashion else file_name

    with _reading(path):
        cache = _cache_file(files) if any(_is_compressed(file) for file in files) else None
    if cache is not None and cache.exists():
        try:
            arrays, where = _read_npz(cache)
            return _make_dataset(dataset_name, arrays, where, shown)
        except SoftmaxError:
            with contextlib.suppress(OSError):  # a damaged copy is never used: the source rebuilds it below
                cache.unlink()
    arrays, where = _read_npz(source) if isinstance(source, Path) else _read_idx_folder(source)
    dataset = _make_dataset(dataset_name, arrays, where, shown, class_names)
    if cache is not None:
        _save_cache(dataset, cache)
    return dataset


def _find_source(path: Path, name: str) -> Path | dict[str, Path]:
    """Return the .npz file to read at path, or the four IDX files of the folder at path."""
    if not path.exists():
        raise SoftmaxError(f"data path {path} does not exist: expected {EXPECTED_SOURCE}")
    if path.is_file():
        return path
    with _reading(path):
        npz_files = sorted(path.glob("*.npz"))
        idx_files = {}
        for key, stem in IDX_FILES.items():
            # Uncompressed first: it reads without a decompression pass.
            file = next((file for file in (path / stem, path / f"{stem}.gz") if file.is_file()), None)
            if file is not None:
                idx_files[key] = file
    complete = len(idx_files) == len(IDX_FILES)
    # Measured on MNIST: uncompressed IDX files load in 0.03 s; a compressed .npz in 0.14 s, gzipped IDX in 0.15 s.
    if complete and not any(file.suffix == ".gz" for file in idx_files.values()):
        return idx_files
    preferred = path / f"{name}.npz"
    if preferred in npz_files:
        return preferred
    if len(npz_files) == 1:
        return npz_files[0]
    if len(npz_files) > 1:
        names = ", ".join(file.name for file in npz_files)
        raise SoftmaxError(f"data folder {path} holds several .npz files ({names}): pass the one to use as --data")
    if complete:
        return idx_files
    if idx_files:
        missing = ", ".join(stem for key, stem in IDX_FILES.items() if key not in idx_files)
        raise SoftmaxError(f"data folder {path} lacks {missing} (or .gz): all four IDX files are needed")
    raise SoftmaxError(f"data folder {path} holds no .npz and no IDX files: expected {EXPECTED_SOURCE}")


@contextlib.contextmanager
def _reading(path: Path, problem: str = ""):
    """Turn any failure to read path (OS, zip, gzip, numpy format) into a one-line SoftmaxError naming it."""
    try:
        yield
    except DAMAGED_FILE_ERRORS as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise SoftmaxError(f"cannot read {path}{f' ({problem})' if problem else ''}: {reason}") from None


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the arrays of a Keras-format .npz (plus class_names if it has them) and where each came from."""
    with _reading(path):
        try:
            archive = np.load(path, allow_pickle=False)
        except ValueError:  # numpy's answer to a file that is neither .npy nor .npz (it would need pickle)
            raise SoftmaxError(f"{path} is not a NumPy .npz file: expected {EXPECTED_SOURCE}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise SoftmaxError(f"{path} holds a single array (.npy), not an .npz: expected {EXPECTED_SOURCE}")
        with archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise SoftmaxError(
                    f"{path} lacks {', '.join(missing)}: a Keras-format .npz holds {', '.join(KEYS)}"
                    f" (it has {', '.join(archive.files) or 'nothing'})"
                )
            try:
                arrays = {key: archive[key] for key in (*KEYS, "class_names") if key in archive.files}
            except ValueError as e:
                if "allow_pickle" not in str(e):
                    raise
                raise SoftmaxError(
                    f"{path} holds Python objects, which are never loaded (they could run code): save plain arrays"
                ) from None
            for key, value in arrays.items():
                if not isinstance(value, np.ndarray):  # numpy hands back a member without the .npy header as bytes
                    raise SoftmaxError(f"{path}: {key} is not a NumPy array (.npy) member: expected {EXPECTED_SOURCE}")
    return arrays, {key: f"{path} ({key})" for key in arrays}


def _read_idx_folder(files: dict[str, Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the four arrays of an IDX folder and the file each came from."""
    arrays = {key: _read_idx(file, IDX_MAGIC[key[0]]) for key, file in files.items()}
    return arrays, {key: str(file) for key, file in files.items()}


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Return the uint8 array in one IDX file (gzipped if it ends in .gz), after checking its header and size.

    The header is read first, and then no more than the bytes it gives (and one, to notice extra data) are read
    or decompressed: a small .gz that expands to gigabytes is refused having cost no more than the header says.
    """
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    kind = "images" if ndim == 3 else "labels"
    compressed = path.suffix == ".gz"
    with _reading(path):
        file = open(path, "rb")
    with file, _reading(path, "damaged gzip data" if compressed else ""):
        stream = gzip.GzipFile(fileobj=file) if compressed else file
        header = stream.read(header_size)
        found = int.from_bytes(header[:4], "big")
        if found != magic:
            raise SoftmaxError(f"{path} is not an IDX {kind} file: magic number {found}, expected {magic}")
        if len(header) < header_size:
            raise SoftmaxError(f"{path} is truncated: it ends inside its header")
        shape = tuple(int.from_bytes(header[i : i + 4], "big") for i in range(4, header_size, 4))
        expected = math.prod(shape)
        if expected > MAX_IDX_BYTES:
            raise SoftmaxError(
                f"{path} is not a usable IDX {kind} file: its header gives shape {shape}, {expected:,} bytes, "
                f"more than the {MAX_IDX_BYTES:,} allowed (is the file damaged?)"
            )
        data = bytearray()
        while len(data) <= expected and (chunk := stream.read(min(READ_CHUNK, expected + 1 - len(data)))):
            data += chunk
    if len(data) != expected:
        problem, held = ("truncated", len(data)) if len(data) < expected else ("longer than its header says", "more")
        raise SoftmaxError(
            f"{path} is {problem}: its header gives shape {shape} ({expected} bytes) but it holds {held}"
        )
    return np.frombuffer(data, np.uint8).reshape(shape)


def _make_dataset(
    name: str,
    arrays: dict[str, np.ndarray],
    where: dict[str, str],
    source: str,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Return the checked Dataset; class names come from the arrays, else class_names, else "0".."k-1"."""
    x_train, x_test = (_pixels(arrays[key], where[key]) for key in ("x_train", "x_test"))
    y_train, y_test = (_labels(arrays[key], where[key]) for key in ("y_train", "y_test"))
    for images, labels, x, y in ((x_train, y_train, "x_train", "y_train"), (x_test, y_test, "x_test", "y_test")):
        if len(images) != len(labels):
            raise SoftmaxError(f"{where[x]} has {len(images)} images but {where[y]} has {len(labels)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        train_size, test_size = ("x".join(map(str, x.shape[1:])) for x in (x_train, x_test))
        raise SoftmaxError(f"{source}: training images are {train_size} pixels but test images are {test_size}")
    labels_end = int(max(y_train.max(), y_test.max())) + 1
    if "class_names" in arrays:
        class_names = _class_names(arrays["class_names"], where["class_names"])
    elif class_names is None:
        # A class that no training image has means labels that are not class numbers, or a damaged label file:
        # a flipped bit in one MNIST label would otherwise make a model of up to 256 classes.
        present = np.unique(y_train)
        if len(present) < labels_end:
            gaps = np.flatnonzero(present != np.arange(len(present)))
            missing = int(gaps[0]) if len(gaps) else len(present)
            raise SoftmaxError(
                f"{source}: labels run up to {labels_end - 1} but no training image has label {missing}: "
                "labels must be class numbers 0..k-1, each with training images (is a label file damaged?)"
            )
        class_names = tuple(str(label) for label in range(labels_end))
    for labels, key in ((y_train, "y_train"), (y_test, "y_test")):
        if labels.max() >= len(class_names):
            raise SoftmaxError(
                f"{where[key]}: label {labels.max()} is out of range: there are {len(class_names)} classes"
                f" (0..{len(class_names) - 1})"
            )
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)  # shared by everything that reads the data set: nobody edits it in place
    return Dataset(name, x_train, y_train, x_test, y_test, class_names, source)


def _pixels(images: np.ndarray, where: str) -> np.ndarray:
    """Return images as uint8 (n, height, width) 0..255, from (n, h, w), (n, h, w, 1) or (n, side*side)."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif images.ndim == 2 and math.isqrt(images.shape[1]) ** 2 == images.shape[1]:
        side = math.isqrt(images.shape[1])
        images = images.reshape(len(images), side, side)
    if images.ndim != 3:
        raise SoftmaxError(
            f"{where}: images have shape {images.shape}; expected (n, height, width), (n, height, width, 1)"
            " or (n, d) with d a square number"
        )
    if images.size == 0:
        raise SoftmaxError(f"{where}: there are no images (shape {images.shape})")
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer):
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise SoftmaxError(f"{where}: pixel values run {low}..{high}; expected 0..255")
        return images.astype(np.uint8)
    if not np.issubdtype(images.dtype, np.floating):
        raise SoftmaxError(f"{where}: pixels are {images.dtype}; expected numbers 0..255 (or 0..1)")
    if not np.isfinite(images).all():
        raise SoftmaxError(f"{where}: some pixels are NaN or infinite")
    if images.max() <= 1:  # float images are often stored in 0..1
        images = images * 255
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise SoftmaxError(f"{where}: pixel values run {low:g}..{high:g}; expected 0..255 (or 0..1)")
    return np.rint(images).astype(np.uint8)


def _labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Return labels as a 1-D int64 array of class numbers, which must be whole and not negative."""
    if labels.ndim != 1:
        raise SoftmaxError(f"{where}: labels have shape {labels.shape}; expected one label per image, shape (n,)")
    if len(labels) == 0:
        raise SoftmaxError(f"{where}: there are no labels")
    if labels.dtype.kind not in "iuf":
        raise SoftmaxError(f"{where}: labels are {labels.dtype}; expected whole numbers 0..k-1")
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
        raise SoftmaxError(f"{where}: labels must be whole numbers 0..k-1, found fractional or NaN values")
    if labels.min() < 0:
        raise SoftmaxError(f"{where}: labels must be class numbers 0..k-1, found {labels.min()}")
    if labels.max() > MAX_LABEL:  # a larger number is no class number, and would wrap round on the cast below
        raise SoftmaxError(f"{where}: labels must be class numbers 0..k-1, found {labels.max()}")
    return labels.astype(np.int64)


def _class_names(names: np.ndarray, where: str) -> tuple[str, ...]:
    """Return the class names an .npz carries, which must be a non-empty 1-D array of strings."""
    if names.ndim != 1 or len(names) == 0 or names.dtype.kind not in "US":
        raise SoftmaxError(f"{where}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    return tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names.tolist())


def _is_compressed(file: Path) -> bool:
    """Return whether reading file means decompressing it, the one case in which a cached copy loads faster."""
    if file.suffix == ".gz":
        return True
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        return any(member.compress_type != zipfile.ZIP_STORED for member in archive.infolist())


def _cache_dir() -> Path:
    """Return the folder for fast copies of local data sets: $SOFTMAX_CACHE_DIR, else the user's cache folder."""
    if os.environ.get("SOFTMAX_CACHE_DIR"):
        return Path(os.environ["SOFTMAX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softmax-cli"


def _cache_file(files: list[Path]) -> Path | None:
    """Return where the fast copy of these files lives, named by their place, size, time and content (None: no home)."""
    key = hashlib.sha256(CACHE_VERSION)
    for file in files:
        stat = file.stat()
        key.update(f"\0{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        key.update(hashlib.sha256(file.read_bytes()).digest())
    try:
        return _cache_dir() / f"{key.hexdigest()[:40]}.npz"
    except RuntimeError:  # no home folder to put a cache in: read the source every time
        return None


def _save_cache(dataset: Dataset, cache: Path) -> None:
    """Write dataset to cache as an uncompressed .npz, atomically; a cache that cannot be written is skipped.

    Not store.write_atomically: a copy needs neither its flushes to disk (a damaged copy is found and rebuilt)
    nor its usual permissions (mkstemp's owner-only ones keep a copy of private data private).
    """
    arrays = {key: getattr(dataset, key) for key in KEYS}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=cache.stem, suffix=".tmp", dir=cache.parent)
    except OSError:
        return
    try:
        # Each array in an .npz carries a CRC-32 that zipfile checks when it reads it back: that verifies the copy.
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays, class_names=np.array(dataset.class_names))
        os.replace(temporary, cache)
    except OSError:
        pass  # a copy that cannot be written only costs speed
    finally:
        # Whatever stopped the write (an error, Ctrl-C), leave no half-written copy; after the rename it is gone.
        with contextlib.suppress(OSError):
            Path(temporary).unlink(missing_ok=True)

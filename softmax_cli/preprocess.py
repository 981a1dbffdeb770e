"""Deskewing: straighten each image's slant by its second moments, the classic step for a linear classifier.

LeCun's MNIST table took the same linear classifier from 12.0 % to 8.4 % error with it. Each image is sheared
horizontally about its centre of mass, by alpha = mu11 / mu02 (the covariance of row and column over the variance
of the rows), so that its principal axis becomes vertical: output(r, c) = input(r, c + alpha * (r - r_mean)).

The whole set is done at once in NumPy, a chunk of images at a time: within one row the shear is a single
shift, so linear interpolation along the row is one whole-pixel shift (a copy of the row) and one blend of two
neighbours with the same weight for every pixel of the row. No per-image Python loop.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Part of the cache key of deskewed data sets: change it whenever deskew's output changes.
DESKEW_VERSION = 1
CHUNK = 4096  # images per chunk: a few tens of MB of scratch arrays however large the set
# Fewer pixels than this are deskewed each time, never cached: a person's image, a small data set. Deskewing
# MNIST's 47 million took 0.43 s here and reading its copy 0.07 s; a million, a few ms either way.
CACHED_FROM = 2**20


def deskew(images: np.ndarray) -> np.ndarray:
    """Return the images (n, height, width) or one image (height, width) with their slant straightened.

    uint8 pixels come back as uint8 (rounded to the nearest level); float intensities (in [0, 1]) come back as
    float32. Each image keeps its rows' masses and its centre of mass; after the shear its mu11 is 0 (up to the
    rounding to uint8, and unless ink is sheared off the frame's edge). A blank image, or one whose ink lies in a
    single row (nothing to straighten), comes back unchanged. The result depends on nothing but the images.
    """
    images = np.asarray(images)
    if images.ndim == 2:
        return deskew(images[np.newaxis])[0]
    if images.ndim != 3:
        raise ValueError(f"deskew takes images (n, height, width) or one image (height, width), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"deskew takes uint8 pixels or float intensities, got {images.dtype}")
    n, height, width = images.shape
    out = np.empty(images.shape, np.uint8 if images.dtype == np.uint8 else np.float32)
    # Scratch made once for all chunks: fresh arrays for each chunk cost as much in page faults as the work.
    # Each row sits between `width` zeros on either side, which stay zero from chunk to chunk.
    padded = np.zeros((min(n, CHUNK) * height, 3 * width), images.dtype)
    blend = np.empty((2, min(n, CHUNK) * height, width), np.float32)
    for start in range(0, n, CHUNK):
        _deskew_chunk(images[start:start + CHUNK], out[start:start + CHUNK], padded, blend)
    return out


def _row_shifts(images: np.ndarray) -> np.ndarray:
    """Return how far (in pixels, to the right) each row of each image (n, height, width) is to be read from."""
    n, height, width = images.shape
    # uint8 pixels are summed as whole numbers (int64), which float64 then holds exactly, since every product
    # below stays well under 2**53: an upright symmetric image gets alpha exactly 0, in any order of summation.
    # einsum, not matmul: BLAS threads waiting for a busy core made this step several times slower here.
    kind = np.int64 if images.dtype == np.uint8 else np.float64
    row_mass = images.sum(axis=2, dtype=kind).astype(np.float64)
    row_column_sum = np.einsum("nrc,c->nr", images, np.arange(width, dtype=kind)).astype(np.float64)
    rows = np.arange(height, dtype=np.float64)
    mass = row_mass.sum(axis=1)
    sum_r, sum_rr = np.einsum("nr,r->n", row_mass, rows), np.einsum("nr,r->n", row_mass, rows * rows)
    sum_c, sum_rc = row_column_sum.sum(axis=1), np.einsum("nr,r->n", row_column_sum, rows)
    # mass**2 * mu11 and mass**2 * mu02, without dividing first: exact for uint8 pixels
    covariance = mass * sum_rc - sum_r * sum_c
    row_variance = mass * sum_rr - sum_r * sum_r
    alpha = np.divide(covariance, row_variance, out=np.zeros(n), where=row_variance > 0)
    row_mean = np.divide(sum_r, mass, out=np.zeros(n), where=mass > 0)
    return alpha[:, np.newaxis] * (rows - row_mean[:, np.newaxis])


def _deskew_chunk(images: np.ndarray, out: np.ndarray, padded: np.ndarray, blend: np.ndarray) -> None:
    """Write the deskewed images (n, height, width) into out (uint8 or float32, same shape), using the scratch.

    padded holds at least n * height rows of 3 * width pixels, zero outside the middle third; blend holds two
    float32 arrays of at least n * height rows of width.
    """
    n, height, width = images.shape
    m = n * height
    shifts = _row_shifts(images).reshape(m)
    # output(c) = input(c + shift) = (1 - t) * input(c + k) + t * input(c + k + 1), with k = floor(shift)
    whole = np.floor(shifts)
    weight = (shifts - whole).astype(np.float32)[:, np.newaxis]
    # A row shifted by a whole `width` or more is blank: beyond that only the clip changes, not the result.
    whole = np.clip(whole, -width, width).astype(np.intp)
    padded[:m, width:2 * width] = images.reshape(m, width)
    # window j of a padded row is the row shifted by j - width
    windows = np.lib.stride_tricks.sliding_window_view(padded[:m], width, axis=1)
    row_index = np.arange(m)
    left, right = blend[0, :m], blend[1, :m]
    np.copyto(left, windows[row_index, whole + width])
    np.copyto(right, windows[row_index, np.minimum(whole + 1, width) + width])
    right -= left
    right *= weight
    left += right
    if out.dtype == np.uint8:
        np.rint(left, out=left)
        np.clip(left, 0, 255, out=left)  # a blend of two levels stays within them, but float error could step out
    out.reshape(m, width)[...] = left


def preprocessed(images: np.ndarray, preprocess: str, key: str | None = None) -> np.ndarray:
    """Return images (n, height, width) after the preprocessing a model asks for ("none" or "deskew"), same dtype.

    The one way every caller (run, tune, the estimator, predict, serve, evaluate) preprocesses images. A deskewed
    set of CACHED_FROM pixels or more comes from the verified cache when it holds a sound copy: under key, which
    must name exactly these images (a data set's fingerprint names its training set), else under a digest of the
    images themselves (hashing them costs a tenth of deskewing them). The cache's key also names DESKEW_VERSION,
    so a copy is never used for another version of deskew; a missing or damaged copy is made again and kept.
    """
    images = np.asarray(images)
    if preprocess == "none":
        return images
    if preprocess != "deskew":
        raise ValueError(f"preprocess must be none or deskew, got {preprocess!r}")
    if images.size < CACHED_FROM:
        return deskew(images)
    if key is None:
        digest = hashlib.sha256(np.ascontiguousarray(images)).hexdigest()
        key = f"images {images.dtype} {images.shape} {digest}"
    # imported here, not at the top: predict deskews one image and needs nothing of the data package
    from .data.cache import cached_array

    return cached_array(f"deskew {DESKEW_VERSION} {key}", lambda: deskew(images))

"""Redrawing MNIST digits (uint8 28x28, white on black) as the image files people really have.

Each function writes one file: a photo of dark ink on light paper, a white digit on a transparent PNG,
a small JPEG, a palette PNG or a 16-bit PNG. The random ones take a numpy Generator, so a seed fixes them.
"""

from pathlib import Path

import numpy as np
from PIL import Image


def _enlarged(digit: np.ndarray, factor: int) -> np.ndarray:
    """Return the digit enlarged by factor with bilinear interpolation, as ink coverage in [0, 1]."""
    side = digit.shape[0] * factor
    return np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR)) / 255


def _off_centre(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return the coverage on a larger clear sheet, with an unequal random margin on each side."""
    side = coverage.shape[0]
    top, bottom, left, right = rng.integers(side // 10, side // 2, size=4)
    return np.pad(coverage, ((top, bottom), (left, right)))


def photo(digit: np.ndarray, path: Path, rng: np.random.Generator) -> None:
    """Write the digit as an RGB PNG photo of dark ink on light paper: enlarged, off-centre, unevenly lit, noisy."""
    coverage = _off_centre(_enlarged(digit, int(rng.integers(4, 9))), rng)
    height, width = coverage.shape
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.3)
    angle = rng.uniform(0, 2 * np.pi)
    rows, columns = np.mgrid[0:height, 0:width]
    ramp = 0.08 * (np.cos(angle) * rows / height + np.sin(angle) * columns / width)  # uneven light across the sheet
    gray = paper + ramp - (paper - ink) * coverage
    warm_light = np.array([1.0, 0.97, 0.92])
    rgb = gray[..., None] * warm_light + rng.normal(0, 0.03, size=(height, width, 3))
    pixels = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)  # noise does not compress: save time instead


def transparent_png(digit: np.ndarray, path: Path, rng: np.random.Generator) -> None:
    """Write the digit as a white drawing on a transparent RGBA PNG; the clear pixels are white or black."""
    alpha = _off_centre(_enlarged(digit, int(rng.integers(2, 5))), rng)
    clear_colour = 255 if rng.random() < 0.5 else 0  # apps differ in what they store under alpha 0
    rgb = np.where(alpha[..., None] > 0, 255, clear_colour) * np.ones(3)
    rgba = np.dstack([rgb, np.round(alpha * 255)]).astype(np.uint8)
    Image.fromarray(rgba).save(path, format="PNG")


def small_jpeg(digit: np.ndarray, path: Path, rng: np.random.Generator) -> None:
    """Write the digit as a small RGB JPEG of dark ink on white (28 to 56 px, quality 50 to 75)."""
    side = int(rng.integers(28, 57))
    dark_on_white = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BILINEAR).convert("RGB")
    dark_on_white.save(path, format="JPEG", quality=int(rng.integers(50, 76)))


def palette_png(digit: np.ndarray, path: Path, transparent: bool) -> None:
    """Write the digit as a palette (P) image, white on black, whose black is the transparent colour if asked.

    The path's suffix chooses the format: .png or .gif.
    """
    image = Image.fromarray(digit).convert("P")
    if transparent:
        image.info["transparency"] = image.getpixel((0, 0))
    image.save(path)


def sixteen_bit_png(digit: np.ndarray, path: Path) -> None:
    """Write the digit as a 16-bit grayscale PNG of dark ink on white, using the full 0-65535 range."""
    Image.fromarray((255 - digit).astype(np.uint16) * 257).save(path, format="PNG")

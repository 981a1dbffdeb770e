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



def ruled_paper(shape, rng: np.random.Generator, kind: str, spacing: float, width: float, darkness: float,
                tilt_degrees: float = 0.0) -> np.ndarray:
    """Return a sheet's rules as ink coverage in [0, darkness]: "lined" (horizontal rules) or "squared" (both ways).

    spacing is the distance between rules and width their thickness, in pixels (anti-aliased); the rules start at a
    random offset and are turned by tilt_degrees, as on a sheet photographed a little askew.
    """
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    angle = np.radians(tilt_degrees)

    def rules_across(position):
        distance = np.abs((position + rng.uniform(0, spacing)) % spacing - spacing / 2)  # to the nearest rule
        return np.clip(width / 2 + 0.5 - distance, 0, 1)

    lines = rules_across(rows * np.cos(angle) - columns * np.sin(angle))
    if kind == "squared":
        lines = np.maximum(lines, rules_across(columns * np.cos(angle) + rows * np.sin(angle)))
    return darkness * lines


def on_paper(coverage: np.ndarray, rules: np.ndarray, rng: np.random.Generator, photographed: bool = True) -> np.ndarray:
    """Return grayscale pixels in [0, 1] of the ink coverage written over the rules on light paper.

    A photo is unevenly lit (a brightness ramp and a darker corner) and noisy; a scan is evenly lit and nearly clean.
    """
    height, width = coverage.shape
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.3)
    gray = np.full(coverage.shape, paper)
    if photographed:
        rows, columns = np.mgrid[0:height, 0:width]
        angle = rng.uniform(0, 2 * np.pi)
        gray += rng.uniform(0.05, 0.12) * (np.cos(angle) * rows / height + np.sin(angle) * columns / width - 0.5)
    gray *= 1 - 0.5 * rules  # a rule at full darkness halves the light of the paper under it
    gray -= (gray - ink) * coverage
    noise = 0.03 if photographed else 0.005
    return np.clip(gray + rng.normal(0, noise, size=gray.shape), 0, 1)


def enlarged_on_sheet(digit: np.ndarray, factor: int, rng: np.random.Generator, margin: float = 1.0) -> np.ndarray:
    """Return the digit enlarged by factor on a clear sheet margin times its side larger, as ink coverage in [0, 1]."""
    coverage = _enlarged(digit, factor)
    extra = int(margin * coverage.shape[0])
    top, left = (int(v) for v in rng.integers(0, extra + 1, size=2))
    return np.pad(coverage, ((top, extra - top), (left, extra - left)))


def skeleton(ink: np.ndarray) -> np.ndarray:
    """Return the one-pixel-wide skeleton of a boolean image (Zhang and Suen's thinning, 1984)."""
    image = np.pad(ink.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            # the eight neighbours P2..P9, clockwise from the one above
            n = [np.roll(p, shift, axis=(0, 1)) for shift in
                 [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)]]
            count = sum(v.astype(np.uint8) for v in n)
            transitions = sum((~n[k] & n[(k + 1) % 8]).astype(np.uint8) for k in range(8))
            if step == 0:
                away = ~(n[0] & n[2] & n[4]) & ~(n[2] & n[4] & n[6])
            else:
                away = ~(n[0] & n[2] & n[6]) & ~(n[0] & n[4] & n[6])
            remove = p & (count >= 2) & (count <= 6) & (transitions == 1) & away
            if remove.any():
                image = p & ~remove
                changed = True
        if not changed:
            return image[1:-1, 1:-1]


def pen(digit: np.ndarray, factor: int, width: float) -> np.ndarray:
    """Return the digit enlarged by factor and redrawn along its skeleton with a pen of width pixels, as coverage."""
    from scipy.ndimage import distance_transform_edt

    line = skeleton(_enlarged(digit, factor) > 0.5)
    return np.clip(width / 2 + 0.5 - distance_transform_edt(~line), 0, 1)


# --- whole sets, as bench/paper.py measures them (its docstring gives the protocol) ---

PAPERS = {  # name: (kind, photographed, darkness range)
    "plain, photographed": (None, True, None),
    "lined light, photographed": ("lined", True, (0.15, 0.3)),
    "lined dark, photographed": ("lined", True, (0.6, 1.0)),
    "squared light, photographed": ("squared", True, (0.15, 0.3)),
    "squared dark, photographed": ("squared", True, (0.6, 1.0)),
    "plain, scanned": (None, False, None),
    "lined light, scanned": ("lined", False, (0.15, 0.3)),
    "lined dark, scanned": ("lined", False, (0.6, 1.0)),
    "squared light, scanned": ("squared", False, (0.15, 0.3)),
    "squared dark, scanned": ("squared", False, (0.6, 1.0)),
}


def digits_on_paper(digits: np.ndarray, name: str, seed: int) -> list[np.ndarray]:
    """Return the digits as grayscale photos or scans on the paper PAPERS[name] describes."""
    kind, photographed, darkness = PAPERS[name]
    images = []
    for i, digit in enumerate(digits):
        rng = np.random.default_rng([seed, i])
        factor = int(rng.integers(4, 9))
        coverage = enlarged_on_sheet(digit, factor, rng)
        rules = np.zeros_like(coverage)
        if kind is not None:
            box = 20 * factor
            spacing = box * (rng.uniform(0.9, 1.3) if kind == "lined" else rng.uniform(0.45, 0.65))
            tilt = rng.uniform(-2, 2) if photographed else rng.uniform(-0.5, 0.5)
            rules = ruled_paper(coverage.shape, rng, kind, spacing, rng.uniform(1, 3), rng.uniform(*darkness),
                                       tilt)
        images.append(on_paper(coverage, rules, np.random.default_rng([seed, i, 1]), photographed))
    return images


def digits_with_pen(digits: np.ndarray, thin: bool, seed: int) -> list[np.ndarray]:
    """Return the digits redrawn along their skeletons with a thin or a thick pen, dark on white."""
    images = []
    for i, digit in enumerate(digits):
        rng = np.random.default_rng([seed, i])
        factor = int(rng.integers(4, 9))
        width = rng.uniform(1.5, 3) if thin else 0.12 * 20 * factor
        coverage = np.pad(pen(digit, factor, width), 2 * factor)
        images.append(1 - 0.85 * coverage)
    return images

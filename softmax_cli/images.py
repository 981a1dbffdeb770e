"""Turning a person's image file into a model's input: light object on black, framed as its training images were.

Data sets frame their images in one of two ways (CONVENTIONS), and an image must be framed the same way:
- "mnist", MNIST's recipe (LeCun, Cortes, Burges): each digit was size-normalised to fit a 20x20 box, keeping
  its aspect ratio, with anti-aliased grey edges, then placed in a 28x28 field so that its centre of mass is at
  the centre of the field. `to_mnist` repeats that on any grayscale array.
- "fill", Fashion-MNIST's recipe (Zalando) and that of scikit-learn's 8x8 digits: the object is trimmed to its
  bounding box, resized so that its longer side fills the frame, and centred by its bounding box.
  `to_filled_frame` repeats that.
`load_image` reads the file (or the bytes of one) first. Both conventions invert dark ink on light paper: the models
see light on black. An image with nothing that looks like ink is refused (NoDigit) rather than guessed at, and a dark
band along a photo's edge (a shadow, the table beside the sheet) is not taken for ink when there is ink inside.

Pillow is imported inside the functions that need it, so that importing this module stays cheap.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import SoftmaxError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# The formats the README promises, recognised by content whatever the file is called: Pillow never hands a file to
# another decoder (EPS would run Ghostscript). A phone's multi-picture JPEG (MPO) is opened by the JPEG plugin.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
MAX_PIXELS = 40_000_000       # larger images are refused from their header, before decoding (decompression bombs)
DRAFT_SIDE = 1024              # a JPEG larger than twice this on both sides is decoded at a reduced scale
MNIST_SIDE, MNIST_BOX = 28, 20  # MNIST fits each digit into a 20x20 box inside its 28x28 field
MNIST_STROKE = 2.8            # the median width of MNIST's strokes, in pixels of its 20x20 box (stroke_width)
THIN_STROKE = 0.5             # strokes thinner than this fraction of it once framed (a thin pen) are thickened to it
THICKENING_DETAIL = 4         # on a grid this many times finer than the box
DOUBT_INK = 0.1               # doubt: the framed pixels taken as ink when a framed image is looked at for doubts
DOUBT_WIDTH = 1.5             # doubt: ink wider than this many times its height
DOUBT_MARKS, DOUBT_MARK = 3, 0.1  # doubt: this many separate marks, each of at least this fraction of the ink
DOUBT_FILL = 0.8              # doubt: ink over this fraction of its box
MIN_CONTRAST = 0.1            # ink that differs from the paper by less than this (of full scale) is no ink: blank
SPECKS = 10                   # this many most extreme pixels may be dust or dead pixels and do not count as ink
NOISE_MARGIN = 5.0            # ink must stand this many noise standard deviations above the paper
FAINTEST_INK = 0.05           # and at least this fraction of the contrast, so that JPEG ringing is not ink
SPECK_NEIGHBOURS = 2          # ink with fewer of its 8 neighbours inked is a speck (noise, a faint rule's dots)
STRAY_INK = 0.002             # the digit's bounding box leaves out this fraction of the ink mass on each side
FILL_DETAIL = 4               # "fill" frames the object on a grid this many times finer, then averages each block
SHADOW_CONTACT = 0.1          # ink along this fraction of the image's outermost pixels may be a shadow, not a digit
SHADOW_GRID = 256             # what touches the edge is traced on a grid of at most this many cells a side
RULE_GRID = 256               # the rules of lined and squared paper are looked for on a grid this many cells a side
RULE_SPAN = 0.6               # a straight line of ink across this fraction of the image or more is a rule, not a digit
RULE_EDGE_SPAN = 0.15        # or across this fraction of it, for a tilted rule that runs out of the image
RULE_TILT = 3.0               # rules turned by up to this many degrees (a sheet photographed askew) are found
RULE_THICKNESS = 1 / 64       # and thinner than this fraction of the image's side (at least one cell of RULE_GRID)
RULE_GAP = 1 / 100            # gaps in a rule up to twice this fraction of its length are bridged (a faint rule)
ONE_LINE = 0.1                # a line (even tilted) lies within this fraction of the image's height or width
LEFT_BY_RULES = 0.05          # ink other than specks weighing less than this fraction of the rules' is no digit
RULE_FLOOR = 0.5              # rules are looked for in the ink above this fraction of the floor of ink
RULE_LEVEL = 60               # a rule's level: this percentile of the strongest ink of the cells on the rules
RULE_UNDER_INK = 1.5          # on a rule, ink this many times as dark as the rule's level is the digit crossing it
EVEN_FIT = 0.9                # of the edge's pixels, within 3 noise deviations of the plane of light
UNEVEN_LIGHT = 0.02           # light across the paper varying by more than this (of full scale) is evened out


class NoDigit(SoftmaxError):
    """The image holds nothing that looks like ink: a plain or nearly uniform page."""

    def __init__(self, name: str = "the image", only_rules: bool = False):
        self.only_rules = only_rules
        what = ("nothing but the straight rules of lined or squared paper" if only_rules
                else "nothing in it stands out from the paper (it is plain or nearly uniform)")
        super().__init__(f"{name} holds no digit: {what}; draw or photograph a digit, dark on light or light on dark")


def load_image(
    source: str | os.PathLike | bytes,
    shape: tuple[int, int] = (MNIST_SIDE, MNIST_SIDE),
    convention: str = "mnist",
    name: str | None = None,
) -> np.ndarray:
    """Return the image's object as a float32 vector of h*w pixels in [0, 1], light on black, framed by convention.

    source is an image file's path or its bytes (what a web page uploads); name is what messages call it (the path,
    or "the image"). convention is a key of CONVENTIONS: "mnist" (to_mnist) or "fill" (to_filled_frame).
    Any size and colour mode of IMAGE_FORMATS is accepted; an animated image gives its first frame.
    Raises SoftmaxError naming the image when it is missing, not a regular file, unreadable, empty, not in one of
    IMAGE_FORMATS, damaged or truncated, or larger than MAX_PIXELS; NoDigit when it holds nothing like ink.
    """
    if name is None:
        name = "the image" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    frame = CONVENTIONS[convention]
    try:
        return frame(_read_grayscale(source, name), shape)
    except NoDigit as e:
        raise NoDigit(name, e.only_rules) from None


def to_mnist(gray: np.ndarray, shape: tuple[int, int] = (MNIST_SIDE, MNIST_SIDE)) -> np.ndarray:
    """Return a 2-D grayscale image (0 = black, 1 = white) as an MNIST-like float32 vector of h*w pixels in [0, 1].

    Dark ink on light paper is inverted, the paper and its noise become 0 (and the rules of lined or squared paper
    too), the digit's bounding box is scaled to fit a box of 20/28 of `shape` keeping its aspect ratio, and its
    centre of mass is put at the centre. A stroke that would come out much thinner than MNIST's (a thin pen) is
    thickened to MNIST_STROKE first. Raises NoDigit for an image with no ink (plain or nearly uniform).
    """
    box = [max(1, round(side * MNIST_BOX / MNIST_SIDE)) for side in shape]
    return _framed(gray, shape, box, _centre_of_mass_at_centre, stroke=MNIST_STROKE * box[0] / MNIST_BOX)


def to_filled_frame(gray: np.ndarray, shape: tuple[int, int] = (MNIST_SIDE, MNIST_SIDE)) -> np.ndarray:
    """Return a 2-D grayscale image (0 = black, 1 = white) as a float32 vector of h*w pixels in [0, 1], framed to fill.

    As to_mnist, but the object's bounding box is scaled so that it fills `shape` on its longer side, keeping its
    aspect ratio, and the box is put at the centre: Fashion-MNIST's and scikit-learn's digits' framing. As the
    digits were made (32x32 bitmaps, ink counted in 4x4 blocks), the object is framed on a grid FILL_DETAIL times
    finer whose blocks are then averaged, so that it may sit between whole pixels as theirs do.
    """
    fine = (shape[0] * FILL_DETAIL, shape[1] * FILL_DETAIL)
    blocks = _framed(gray, fine, fine, _box_at_centre).reshape(shape[0], FILL_DETAIL, shape[1], FILL_DETAIL)
    pixels = blocks.mean(axis=(1, 3), dtype=np.float32).ravel()
    peak = pixels.max()
    return pixels / peak if peak else pixels


CONVENTIONS = {"mnist": to_mnist, "fill": to_filled_frame}  # how a data set frames its images: see the docstring


def _called(name: str) -> str:
    """Return what a message calls an image: "image photo.png" for a file's name, "the image" as it is."""
    return name if str(name).startswith("the ") else f"image {name}"


def doubt(framed: np.ndarray) -> str | None:
    """Return why a framed image (2-D, light on black) does not look like one digit, in a few words; None if it does.

    Measured on MNIST's test set, each sign is rare in a digit (0.1 to 0.3 % of them): separate marks side by side
    in ink much wider than tall (DOUBT_WIDTH: a row of digits, a word), DOUBT_MARKS separate marks or more, or a
    box nearly filled with ink (DOUBT_FILL: a blot, a photo of something else; a narrow box, a 1's, excepted).
    """
    lit = framed > DOUBT_INK
    if not lit.any():
        return None
    rows, columns = np.nonzero(lit)
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    marks = _marks(lit)
    weights = np.array([framed[mark].sum() for mark in marks])
    heavy = int(np.count_nonzero(weights > DOUBT_MARK * weights.sum()))
    if width > DOUBT_WIDTH * height and heavy >= 2:
        return f"{heavy} marks side by side, {width / height:.1f} times as wide as tall: several digits, not one?"
    if heavy >= DOUBT_MARKS:
        return f"it holds {heavy} separate marks, not one digit"
    if 2 * min(width, height) >= max(width, height) and np.count_nonzero(framed > 0.5) > DOUBT_FILL * height * width:
        return "its box is nearly filled with ink: a blot or a picture, not a digit's strokes"
    return None


def _marks(lit: np.ndarray) -> list[np.ndarray]:
    """Return the separate marks of a small boolean image (touching sideways or diagonally), each as a mask."""
    marks = []
    left = lit.copy()
    while left.any():
        grown = np.zeros_like(left)
        grown.flat[np.flatnonzero(left)[0]] = True
        while True:  # grow the mark into the lit pixels around it until it stops
            padded = np.pad(grown, 1)
            around = np.zeros_like(grown)
            for dr in (0, 1, 2):
                for dc in (0, 1, 2):
                    around |= padded[dr : dr + grown.shape[0], dc : dc + grown.shape[1]]
            around &= left
            if np.array_equal(around, grown):
                break
            grown = around
        marks.append(grown)
        left &= ~grown
    return marks


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Return the image files that the given files, folders and glob patterns name, in order.

    A folder gives its image files (by suffix, sorted, not its subfolders); a pattern gives the files it matches,
    sorted; a file is taken as it is, whatever its suffix.
    Raises SoftmaxError for a path or pattern that names nothing, or a folder without image files.
    """
    paths: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not images:
                raise SoftmaxError(f"folder {text} has no image files ({' '.join(IMAGE_SUFFIXES)})")
            paths.extend(images)
        elif path.exists():
            paths.append(path)
        elif any(wildcard in text for wildcard in "*?["):
            # each file once, however many ways the pattern reaches it (a symbolic link to a folder above it makes
            # a loop that ** walks again and again)
            matches, seen = [], set()
            for match in sorted(glob.glob(text, recursive=True)):
                real = os.path.realpath(match)
                if os.path.isfile(match) and real not in seen:
                    seen.add(real)
                    matches.append(Path(match))
            if not matches:
                raise SoftmaxError(f"no files match the pattern {text}")
            paths.extend(matches)
        else:
            raise SoftmaxError(f"image file {text} does not exist")
    return paths


def save_preprocessed(
    vector: np.ndarray, shape: tuple[int, int], path: str | os.PathLike, reads: Iterable = ()
) -> None:
    """Write the vector as the grayscale PNG image that the model sees (white digit on black); returns None.

    Written atomically, and never onto one of the files in reads (the images being predicted) nor onto an existing
    file that is not a PNG image: SoftmaxError instead.
    """
    from PIL import Image

    from .safe_io import check_destination, write_atomically

    check_destination(path, "preprocessed image", reads=reads, is_kind=_is_png)
    pixels = np.round(np.clip(vector, 0, 1).reshape(shape) * 255).astype(np.uint8)
    write_atomically(
        path, lambda temporary: Image.fromarray(pixels).save(temporary, format="PNG"),
        "write the preprocessed image", "seen.png",
    )


def _is_png(path: Path) -> bool:
    """Return whether the file at path begins as a PNG image does."""
    with open(path, "rb") as file:
        return file.read(8) == b"\x89PNG\r\n\x1a\n"


def _read_grayscale(source: str | os.PathLike | bytes, name: str) -> np.ndarray:
    """Return the image's first frame as float32 grayscale in [0, 1], transparency made into background."""
    from PIL import Image, ImageOps

    if isinstance(source, (bytes, bytearray, memoryview)):
        file = io.BytesIO(source)
    else:
        from .safe_io import open_regular

        file = open_regular(source, "image")  # a regular file only: a FIFO or a device would hang or never end
    with file, warnings.catch_warnings():
        # Pillow's warnings would print below the CLI; a size it warns about is refused like one it rejects.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if file.seek(0, io.SEEK_END) == 0:
            raise SoftmaxError(f"{_called(name)} is empty (0 bytes)")
        file.seek(0)
        try:
            image = Image.open(file, formats=IMAGE_FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Image.DecompressionBombError  # our limit is lower than Pillow's; refused the same way
            image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))  # a big JPEG decodes at 1/2 to 1/8 scale, several times faster
            ImageOps.exif_transpose(image, in_place=True)  # phone photos store their rotation in EXIF
            return _grayscale_pixels(image)
        except Image.UnidentifiedImageError:
            raise SoftmaxError(
                f"{name} is not an image file that can be read (use PNG, JPEG, BMP, GIF, TIFF or WebP)"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise SoftmaxError(f"{_called(name)} has more than {MAX_PIXELS:,} pixels: scale it down first") from None
        except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, struct.error, ... on damaged files
            raise SoftmaxError(
                f"cannot decode {_called(name)} ({one_line(e)}): is the file damaged or truncated?"
            ) from None


def _grayscale_pixels(image) -> np.ndarray:
    """Return a Pillow image as float32 grayscale in [0, 1], scaled by its mode's real range."""
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.float32) / 65535
    if image.mode in ("I", "F"):
        # float64: the range of float32 pixels (up to 3.4e38 either way) overflows float32 when subtracted
        values = np.asarray(image).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("some pixels are not finite numbers")
        low = min(float(values.min()), 0.0)
        high = next((scale for scale in (1, 255, 65535) if values.max() <= scale), float(values.max()))
        return ((values - low) / (high - low)).astype(np.float32)
    if "A" in image.getbands() or "transparency" in image.info:
        gray, alpha = np.moveaxis(np.asarray(image.convert("RGBA").convert("LA")), -1, 0) / np.float32(255)
        return _composite(gray, alpha)
    return np.asarray(image.convert("L")).astype(np.float32) / 255


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Return gray laid over a backdrop chosen so that the transparent pixels look like paper, not ink."""
    if alpha.mean() < 0.5:
        # Mostly transparent: a drawing on a clear sheet, whose colour says nothing (often black).
        # The sheet becomes the opposite of the drawing, so a white digit ends up on black.
        drawing_is_light = (gray * alpha).sum() > 0.5 * alpha.sum()
        backdrop = 0.0 if drawing_is_light else 1.0
    else:
        backdrop = float(np.median(gray[alpha >= 0.5]))  # a few clear corners: the colour of the paper
    return (alpha * gray + (1 - alpha) * backdrop).astype(np.float32)


def _ink_on_black(gray: np.ndarray) -> np.ndarray | None:
    """Return the ink as light on black, in [0, 1] with the paper and its noise at 0; None when there is no ink."""
    gray = _evenly_lit(gray)
    edge = max(1, min(gray.shape) // 20)
    border = np.concatenate([gray[:edge], gray[-edge:], gray[:, :edge], gray[:, -edge:]], axis=None)
    paper = float(np.median(border))
    flat = gray.ravel()
    specks = min(SPECKS, flat.size // 100)
    darkest, lightest = np.partition(flat, [specks, flat.size - 1 - specks])[[specks, flat.size - 1 - specks]]
    # The ink lies on the side that reaches further from the paper; a brighter middle of a photo does not.
    if paper - darkest > lightest - paper:
        ink, contrast = paper - gray, paper - float(darkest)
    else:
        ink, contrast = gray - paper, float(lightest) - paper
    if contrast < MIN_CONTRAST:
        return None
    noise = 1.4826 * float(np.median(np.abs(border - paper)))  # robust standard deviation of the paper
    floor = min(0.5, max(FAINTEST_INK, NOISE_MARGIN * noise / contrast))
    ink = np.clip(ink / contrast, 0, 1)
    # A faint rule is partly below the floor: a dotted line, hard to see as one. The rules are looked for on the
    # ink cut at a lower floor, where they are whole (the noise that passes it forms no long straight lines).
    rules = _rules(np.where(ink < max(FAINTEST_INK, RULE_FLOOR * floor), np.float32(0), ink))
    # Cut, rather than subtract, the floor: the strokes keep their width and grey edges, as in MNIST.
    ink = np.where(ink < floor, np.float32(0), ink)
    if rules is not None:
        without_rules = np.where(rules, np.float32(0), ink)
        if _without_specks(without_rules).sum() > LEFT_BY_RULES * ink[rules].sum():
            ink = without_rules
        elif _several_lines(rules):
            raise NoDigit(only_rules=True)
        # else one straight line and hardly anything else: a 1 (or a 7's bar alone), not a sheet's rules
    shadow = _edge_shadow(ink > 0)
    return ink if shadow is None else np.where(shadow, np.float32(0), ink)


def _evenly_lit(gray: np.ndarray) -> np.ndarray:
    """Return gray with the paper's light made even: a plane fitted to the image's edge, robustly, taken away.

    A photo is often lit from one side, so the paper darkens across the sheet; left in, the dark side's paper
    would pass for faint ink, or raise the threshold that ink must pass. Only a change of more than UNEVEN_LIGHT
    across the image is evened out, and only when the plane fits EVEN_FIT of the edge's pixels (a shadow's band
    along one side is no slope of light, and is left to _edge_shadow).
    """
    height, width = gray.shape
    edge = max(1, min(height, width) // 20)
    step = max(1, max(height, width) // 256)  # a few thousand pixels of the edge are enough to fit a plane
    on_edge = np.zeros((height, width), dtype=bool)
    on_edge[:edge], on_edge[-edge:], on_edge[:, :edge], on_edge[:, -edge:] = True, True, True, True
    rows, columns = np.nonzero(on_edge[::step, ::step])
    rows, columns = rows * step, columns * step
    values = gray[rows, columns].astype(np.float64)
    design = np.column_stack([np.ones(len(rows)), rows / height - 0.5, columns / width - 0.5])
    deviation = np.abs(values - np.median(values))
    kept = deviation <= 3 * 1.4826 * np.median(deviation) + 1e-6  # the paper's level, without ink or a shadow
    for _ in range(3):  # refit without what lies far from the plane
        plane = np.linalg.lstsq(design[kept], values[kept], rcond=None)[0]
        residual = values - design @ plane
        spread = 1.4826 * np.median(np.abs(residual[kept])) + 1e-6
        kept = np.abs(residual) <= 3 * spread
    if abs(plane[1]) + abs(plane[2]) <= UNEVEN_LIGHT or kept.mean() < EVEN_FIT:
        return gray  # evenly lit, or not lit as a plane: a shadow's sharp edge, not a slope of light
    light = (np.arange(height)[:, None] / height - 0.5) * plane[1] + (np.arange(width) / width - 0.5) * plane[2]
    return (gray - light).astype(np.float32)


def _edge_shadow(present: np.ndarray) -> np.ndarray | None:
    """Return the ink connected to the image's edge when it looks like a shadow there, not part of a digit; else None.

    A shadow or a dark band runs along the edge: ink on at least SHADOW_CONTACT of the outermost pixels. A digit
    that was cropped tightly touches the edge too, so the ink there is only taken for a shadow when, besides it,
    there is ink inside (more than SPECKS pixels) that does not touch the edge.
    """
    outermost = np.concatenate([present[0], present[-1], present[1:-1, 0], present[1:-1, -1]])
    if outermost.mean() < SHADOW_CONTACT:
        return None
    # Trace what is connected to the edge on a coarse grid (a cell holds ink when any of its pixels does), by
    # growing from the edge through ink cells until nothing changes: cheap at any image size.
    height, width = present.shape
    cell = -(-max(height, width) // SHADOW_GRID)
    rows, columns = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, columns * cell), dtype=bool)
    padded[:height, :width] = present
    coarse = padded.reshape(rows, cell, columns, cell).any(axis=(1, 3))
    reached = np.zeros_like(coarse)
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        reached[edge] = coarse[edge]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= coarse
        if np.array_equal(grown, reached):
            break
        reached = grown
    shadow = np.repeat(np.repeat(reached, cell, axis=0), cell, axis=1)[:height, :width] & present
    inside = np.count_nonzero(present) - np.count_nonzero(shadow)
    return shadow if inside > SPECKS else None


def _several_lines(lines: np.ndarray) -> bool:
    """Return whether the pixels of lines lie on more than one line: they spread over more than ONE_LINE each way."""
    rows, columns = np.nonzero(lines)
    return bool(np.ptp(rows) > ONE_LINE * lines.shape[0] and np.ptp(columns) > ONE_LINE * lines.shape[1])


def _rules(ink: np.ndarray) -> np.ndarray | None:
    """Return where the ink is the rules of lined or squared paper (or a printed grid); None if there are none.

    A rule is a straight line of ink running across at least RULE_SPAN of the image, horizontal or vertical within
    RULE_TILT degrees, and thinner than RULE_THICKNESS of the image's side: a digit's stroke is shorter or thicker.
    The digit's strokes where they cross or touch a rule are kept: ink there that stands out from the rule's own
    level (RULE_UNDER_INK times it), or, when the rule is as dark as the ink, a rule's stretch beside a stroke (ink
    that is no rule, two cells deep, on both sides: a stroke crossing it). Where two rules cross, nothing is kept.
    """
    height, width = ink.shape
    cell = -(-max(height, width) // RULE_GRID)
    rows, columns = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, columns * cell), dtype=np.float32)
    padded[:height, :width] = ink
    darkest = padded.reshape(rows, cell, columns, cell).max(axis=(1, 3))  # each cell's strongest ink
    coarse = darkest > 0
    if RULE_THICKNESS * max(height, width) < 1:
        return None  # in an image this small, no line is thin enough to be a sheet's rule
    thickest = 1 + max(1, round(RULE_THICKNESS * max(height, width) / cell))  # and a cell more where one straddles two
    across = _rules_across(coarse, thickest)
    down = _rules_across(coarse.T, thickest).T
    if not (across.any() or down.any()):
        return None
    # Along most of a rule's length there is nothing but the rule, its core and its grey edges: the rule's own level
    # is that of its core, which noise makes darker here and there (the median cell is nearer an edge's).
    level = float(np.percentile(darkest[across | down], RULE_LEVEL))
    rest = coarse & ~across & ~down
    reach = thickest + 2  # from a cell of a rule past its far edge
    strokes = (across & _solid_near(rest, reach, 0, -1) & _solid_near(rest, reach, 0, 1)) | (
        down & _solid_near(rest, reach, 1, -1) & _solid_near(rest, reach, 1, 1))
    lines = (across | down) & ~strokes
    on_lines = np.repeat(np.repeat(lines, cell, axis=0), cell, axis=1)[:height, :width]
    return on_lines & (ink > 0) & (ink <= RULE_UNDER_INK * level)


def _solid_near(grid: np.ndarray, reach: int, axis: int, direction: int) -> np.ndarray:
    """Return where grid holds, within reach cells in one direction along axis, two cells in a row: a stroke, no speck."""
    return _near(grid & _near(grid, 1, axis, direction), reach, axis, direction)


def _near(grid: np.ndarray, reach: int, axis: int, direction: int) -> np.ndarray:
    """Return where grid is True within reach cells in one direction (-1 up or left, 1 down or right) along axis."""
    found = np.zeros_like(grid)
    length = grid.shape[axis]
    for step in range(1, min(reach, length - 1) + 1):
        source = [slice(None)] * 2
        target = [slice(None)] * 2
        source[axis] = slice(step, None) if direction > 0 else slice(None, length - step)
        target[axis] = slice(None, length - step) if direction > 0 else slice(step, None)
        found[tuple(target)] |= grid[tuple(source)]
    return found


def _rules_across(grid: np.ndarray, thickest: int) -> np.ndarray:
    """Return the cells of grid on its nearly horizontal rules (see _rules), with their grey edges."""
    rows, columns = grid.shape
    lines = np.zeros_like(grid)
    # A faint rule is only partly above the threshold of ink: a dotted line. Its gaps are bridged to measure it.
    bridged = grid.copy()
    for step in range(1, round(columns * RULE_GAP) + 1):
        bridged[:, step:] |= grid[:, :-step]
        bridged[:, :-step] |= grid[:, step:]
    cell_rows, cell_columns = np.nonzero(bridged)
    if columns < 2 or len(cell_rows) < RULE_SPAN * columns:
        return lines
    # Shear the columns up or down by the line's slope so that a rule at that tilt lies in one row; the tilt whose
    # rows gather the ink most (the largest sum of squared counts) wins. Tilts a cell apart over the width: no rule
    # falls between two of them.
    largest = np.floor(np.tan(np.radians(RULE_TILT)) * columns)
    best_score, best_counts, best_shift = -1, None, None
    for slope in np.arange(-largest, largest + 1) / columns:
        shift = np.round(np.arange(columns) * slope).astype(int)
        shift -= shift.min()
        counts = np.bincount(cell_rows + shift[cell_columns], minlength=rows + shift.max())
        score = int(counts.astype(np.int64) @ counts)
        if score > best_score:
            best_score, best_counts, best_shift = score, counts, shift
    # In the sheared image each rule is a band of long rows, no thicker than thickest; a row beside it is its edge.
    # A tilted rule near the image's edge runs out of it: its row is long for the part of it inside the image, if
    # that part is long enough, and the rows beside it (past its grey edges, where long enough to tell) are mostly
    # paper, so that a shadow filling a corner is no rule.
    inside = np.bincount((np.arange(rows)[:, None] + best_shift).ravel(), minlength=len(best_counts))
    covered = best_counts / np.maximum(inside, 1)
    long_enough = inside >= RULE_EDGE_SPAN * columns
    long_rows = np.concatenate([[False], (covered >= RULE_SPAN) & long_enough, [False]])
    rule_rows = np.zeros(len(long_rows), dtype=bool)
    edges = np.flatnonzero(np.diff(long_rows.astype(np.int8)))
    for first, stop in zip(edges[::2], edges[1::2]):  # the band's rows are first to stop - 1, before the padding
        beside = [row for row in (first - 2, stop + 1) if 0 <= row < len(covered) and long_enough[row]]
        cut_off = inside[first:stop].min() < columns
        if stop - first <= thickest and not (cut_off and (covered[beside] > 1 - RULE_SPAN).any()):
            rule_rows[max(first - 1, 0) : stop + 2] = True
    sheared_rows = 1 + np.arange(rows)[:, None] + best_shift
    return rule_rows[sheared_rows] & grid


def _bounding_box(ink: np.ndarray) -> tuple[slice, slice]:
    """Return the rows and columns that hold the ink, leaving out stray specks far from the digit.

    Specks (_without_specks: the noise of a photo, the dots left of a faint rule) are left out; other ink far from
    the digit weighs too little to count.
    """
    mass = _without_specks(ink)
    if not mass.any():
        mass = ink
    return _span(mass.sum(axis=1)), _span(mass.sum(axis=0))


def _without_specks(ink: np.ndarray) -> np.ndarray:
    """Return the ink without its specks: pixels with fewer than SPECK_NEIGHBOURS of their 8 neighbours inked."""
    present = np.pad(ink > 0, 1)
    around = sum(np.roll(present, (dr, dc), axis=(0, 1)) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)
    return np.where(around[1:-1, 1:-1] >= SPECK_NEIGHBOURS, ink, np.float32(0))


def _span(mass: np.ndarray) -> slice:
    """Return the slice from the first to the last position where the cumulative mass passes STRAY_INK."""
    cumulative = np.cumsum(mass)
    cut = STRAY_INK * cumulative[-1]
    first = np.searchsorted(cumulative, cut, side="right")
    last = np.searchsorted(cumulative, cumulative[-1] - cut)
    return slice(int(first), int(last) + 1)


def _framed(gray: np.ndarray, shape: tuple[int, int], box, place, stroke: float | None = None) -> np.ndarray:
    """Return the ink of gray cropped to its bounding box, fitted into box and placed in a field of shape, as a vector.

    place(digit, shape) puts the fitted ink in the field. With stroke (a width in the field's pixels), strokes that
    would be thinner than THIN_STROKE of it once fitted are first thickened to it (_thickened). Raises NoDigit when
    gray holds no ink.
    """
    ink = _ink_on_black(np.asarray(gray, dtype=np.float32))
    if ink is None:
        raise NoDigit
    rows, columns = _bounding_box(ink)
    if rows.stop <= rows.start or columns.stop <= columns.start:  # no mass to measure (never for finite ink)
        raise NoDigit
    if stroke is not None:
        digit = ink[rows, columns]
        scale = min(box[0] / digit.shape[0], box[1] / digit.shape[1])
        width = stroke_width(digit)
        if width * scale < THIN_STROKE * stroke:
            # Thickened on a grid THICKENING_DETAIL times finer than the box (each cell the strongest ink of its
            # pixels, so that a thin line stays whole), to the width MNIST's strokes have once fitted.
            cell = max(1, int(1 / (scale * THICKENING_DETAIL)))
            digit = _thickened(_block_max(digit, cell), (stroke / (scale * cell) - max(width / cell, 1)) / 2)
            return place(_fit_into_box(digit, box), shape).ravel()
    return place(_fit_into_box(ink[rows, columns], box), shape).ravel()


def stroke_width(ink: np.ndarray) -> float:
    """Return the mean width in pixels of the strokes in ink (light on black): twice their area over their outline.

    A stroke of width w and length L covers w * L pixels and has 2 * L pixels of outline; the ink is taken where it
    is at least half its peak.
    """
    strokes = ink >= 0.5 * ink.max()
    padded = np.pad(strokes, 1)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & strokes
    return 2 * np.count_nonzero(strokes) / max(1, np.count_nonzero(strokes & ~inside))


def _block_max(ink: np.ndarray, cell: int) -> np.ndarray:
    """Return the ink on a grid of cells of cell x cell pixels, each the strongest ink of its pixels."""
    height, width = ink.shape
    rows, columns = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, columns * cell), dtype=np.float32)
    padded[:height, :width] = ink
    return padded.reshape(rows, cell, columns, cell).max(axis=(1, 3))


def _thickened(ink: np.ndarray, radius: float) -> np.ndarray:
    """Return the ink grown by radius pixels on each side (the strongest ink within a disc, its edge anti-aliased),
    with a margin of the growth around it."""
    reach = int(np.ceil(radius + 0.5))
    height, width = ink.shape
    grown = np.pad(ink, reach)
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            weight = min(1.0, radius + 0.5 - float(np.hypot(dr, dc)))
            if weight > 0 and (dr or dc):
                moved = grown[reach + dr : reach + dr + height, reach + dc : reach + dc + width]
                np.maximum(moved, weight * ink, out=moved)
    return grown


def _fit_into_box(digit: np.ndarray, box) -> np.ndarray:
    """Return the digit resized to fit a box of (height, width) pixels, keeping its aspect ratio, with peak 1."""
    from PIL import Image

    scale = min(box[0] / digit.shape[0], box[1] / digit.shape[1])
    height, width = (max(1, round(side * scale)) for side in digit.shape)
    resized = np.asarray(Image.fromarray(digit).resize((width, height), Image.Resampling.BILINEAR))
    return resized / resized.max()


def _centre_of_mass_at_centre(digit: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return a field of the given shape holding the digit shifted so that its centre of mass is at the centre."""
    height, width = digit.shape
    mass = digit.sum()
    centre_row = (digit.sum(axis=1) @ np.arange(height)) / mass
    centre_column = (digit.sum(axis=0) @ np.arange(width)) / mass
    return _placed(digit, shape, round(shape[0] / 2 - centre_row), round(shape[1] / 2 - centre_column))


def _box_at_centre(digit: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return a field of the given shape holding the digit (no larger than the field) with its box at the centre."""
    return _placed(digit, shape, (shape[0] - digit.shape[0]) // 2, (shape[1] - digit.shape[1]) // 2)


def _placed(digit: np.ndarray, shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    """Return a field of the given shape holding the digit with its top left corner at (top, left)."""
    height, width = digit.shape
    # Draw on a field with a digit-sized margin all round, so that a shift past the edge is simply cut off.
    field = np.zeros((shape[0] + 2 * height, shape[1] + 2 * width), dtype=np.float32)
    field[height + top : 2 * height + top, width + left : 2 * width + left] = digit
    return field[height : height + shape[0], width : width + shape[1]]

"""Tests of preprocess.py: deskewing straightens slanted strokes, leaves upright ones alone and moves no ink's centre."""

import numpy as np
import pytest
from conftest import REPO

from softmax_cli import preprocess
from softmax_cli.preprocess import deskew

SIDE = 28
ROWS = np.arange(SIDE, dtype=np.float64)[:, np.newaxis]
COLUMNS = np.arange(SIDE, dtype=np.float64)


def moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """Return (row mean, column mean, mu11, mu02) of one image, straight from the definitions."""
    image = np.asarray(image, np.float64)
    mass = image.sum()
    row_mean, column_mean = (ROWS * image).sum() / mass, (COLUMNS * image).sum() / mass
    mu11 = ((ROWS - row_mean) * (COLUMNS - column_mean) * image).sum() / mass
    mu02 = ((ROWS - row_mean) ** 2 * image).sum() / mass
    return row_mean, column_mean, mu11, mu02


def upright_bar(top: int = 4, bottom: int = 24, left: int = 12, right: int = 16) -> np.ndarray:
    """Return a float image holding a vertical bar of full intensity in rows top..bottom and columns left..right."""
    image = np.zeros((SIDE, SIDE))
    image[top:bottom + 1, left:right] = 1.0
    return image


def sheared(image: np.ndarray, alpha: float) -> np.ndarray:
    """Return image with each row r moved alpha * (r - row mean) pixels to the right, linearly interpolated."""
    row_mean = moments(image)[0]
    return np.stack([np.interp(COLUMNS - alpha * (r - row_mean), COLUMNS, row, left=0, right=0)
                     for r, row in enumerate(image)])


def strokes(n: int, seed: int = 0) -> np.ndarray:
    """Return n uint8 images of bars of random width, height, place and slant, with faint noise on the ink."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        top, left = rng.integers(3, 8), rng.integers(9, 15)
        bar = upright_bar(top, top + rng.integers(12, 18), left, left + rng.integers(2, 6))
        ink = sheared(bar, rng.uniform(-0.5, 0.5)) * rng.uniform(0.6, 1.0, bar.shape)
        images.append(np.rint(ink * 255).astype(np.uint8))
    return np.stack(images)


@pytest.mark.parametrize("alpha", [1.0, -1.0])
def test_a_bar_sheared_by_whole_pixels_comes_back_exactly(alpha):
    # rows 4..24 about their mean 14 move by whole pixels: 45 degrees each way, no interpolation to blur it
    bar = upright_bar()
    slanted = sheared(bar, alpha)
    assert moments(slanted)[2] / moments(slanted)[3] == pytest.approx(alpha)
    np.testing.assert_allclose(deskew(slanted), bar, atol=1e-6)
    np.testing.assert_array_equal(deskew(np.rint(slanted * 255).astype(np.uint8)), (bar * 255).astype(np.uint8))


@pytest.mark.parametrize("alpha", [0.3, -0.45])
def test_a_bar_sheared_by_a_known_angle_is_straightened(alpha):
    bar = upright_bar()
    slanted = sheared(bar, alpha)
    assert moments(slanted)[2] / moments(slanted)[3] == pytest.approx(alpha)  # so deskew must undo exactly alpha
    straight = deskew(slanted)
    assert straight.dtype == np.float32
    *_, mu11, mu02 = moments(straight)
    assert abs(mu11) < 1e-5 * mu02
    # interpolating twice (to shear, to deskew) blurs each edge pixel of the bar by at most t * (1 - t) <= 1/4
    error = np.abs(straight - bar)
    assert error.max() <= 0.25 + 1e-6
    assert error.sum() < 0.2 * bar.sum() and error.sum() < np.abs(slanted - bar).sum() / 4
    assert error[:, 13:15].max() < 1e-6  # the middle of the bar is untouched


def test_an_upright_symmetric_image_is_unchanged():
    ring = np.hypot((ROWS - 13.5) / 9, (COLUMNS - 13.5) / 6)
    image = np.clip(255 * (1 - 4 * np.abs(ring - 1)), 0, 255).astype(np.uint8)  # an upright 0, mirror-symmetric
    assert image.sum() > 0
    np.testing.assert_array_equal(deskew(image), image)
    np.testing.assert_allclose(deskew(image / 255), image / 255, atol=1e-6)


def test_the_centre_of_mass_and_each_rows_ink_stay_put():
    images = strokes(20) / 255
    straight = deskew(images)
    for before, after in zip(images, straight):
        np.testing.assert_allclose(moments(after)[:2], moments(before)[:2], atol=1e-4)
        np.testing.assert_allclose(after.sum(axis=1), before.sum(axis=1), atol=1e-4)
        assert abs(moments(after)[2]) < 1e-5 * moments(after)[3]


def test_uint8_and_float_agree_within_rounding():
    images = strokes(20)
    from_pixels = deskew(images)
    from_intensities = deskew(images / 255)
    assert from_pixels.dtype == np.uint8 and from_intensities.dtype == np.float32
    assert np.abs(from_pixels / 255 - from_intensities).max() <= 0.5 / 255 + 1e-6
    assert np.abs(from_pixels.astype(int) - images).max() > 100  # they were slanted: deskewing moved ink


def test_blank_images_and_ink_in_a_single_row_are_unchanged():
    blank = np.zeros((SIDE, SIDE), np.uint8)
    one_row = blank.copy()
    one_row[14, 5:20] = 200  # no vertical extent: no slant to measure
    images = np.stack([blank, strokes(1)[0], one_row])
    straight = deskew(images)
    np.testing.assert_array_equal(straight[0], blank)
    np.testing.assert_array_equal(straight[2], one_row)
    np.testing.assert_array_equal(deskew(np.zeros((3, SIDE, SIDE), np.float32)), 0)
    assert deskew(np.zeros((0, SIDE, SIDE), np.uint8)).shape == (0, SIDE, SIDE)


def test_one_image_a_batch_and_chunks_agree(monkeypatch):
    images = strokes(10)
    batch = deskew(images)
    for image, straight in zip(images, batch):
        np.testing.assert_array_equal(deskew(image), straight)
    monkeypatch.setattr(preprocess, "CHUNK", 3)  # chunks of 3, 3, 3 and 1 images
    np.testing.assert_array_equal(deskew(images), batch)
    np.testing.assert_array_equal(deskew(images), batch)  # and the same again: deterministic


def test_other_shapes_and_types_are_refused():
    with pytest.raises(ValueError, match="int64"):
        deskew(np.zeros((2, SIDE, SIDE), np.int64))
    with pytest.raises(ValueError, match="height, width"):
        deskew(np.zeros((2, 1, SIDE, SIDE), np.uint8))


def test_preprocessing_none_gives_the_images_themselves():
    images = strokes(3)
    assert preprocess.preprocessed(images, "none") is images


def test_a_few_images_are_deskewed_without_the_cache(monkeypatch):
    """A person's image (predict, serve) is deskewed on the spot: the data package and the disk are not touched."""
    def fail(key, compute):
        raise AssertionError("a few images went through the cache")

    monkeypatch.setattr("softmax_cli.data.cache.cached_array", fail)
    images = strokes(3)
    np.testing.assert_array_equal(preprocess.preprocessed(images, "deskew"), deskew(images))


def test_a_deskewed_set_is_cached_under_its_key_and_deskew_s_version(monkeypatch):
    monkeypatch.setattr(preprocess, "CACHED_FROM", 0)
    images = strokes(6)
    expected = deskew(images)
    np.testing.assert_array_equal(preprocess.preprocessed(images, "deskew", key="six strokes"), expected)

    def fail(images):
        raise AssertionError("deskewed again although the cache holds a copy")

    monkeypatch.setattr(preprocess, "deskew", fail)
    np.testing.assert_array_equal(preprocess.preprocessed(images, "deskew", key="six strokes"), expected)
    with pytest.raises(AssertionError, match="deskewed again"):  # another key: other images
        preprocess.preprocessed(images[::-1].copy(), "deskew", key="six strokes reversed")
    monkeypatch.setattr(preprocess, "DESKEW_VERSION", preprocess.DESKEW_VERSION + 1)
    with pytest.raises(AssertionError, match="deskewed again"):  # another version of deskew: another key
        preprocess.preprocessed(images, "deskew", key="six strokes")


def test_a_deskewed_set_without_a_key_is_cached_under_a_digest_of_its_images(monkeypatch):
    """The test set (a data set's fingerprint names its training set only), tune's and the estimator's data."""
    monkeypatch.setattr(preprocess, "CACHED_FROM", 0)
    images = strokes(6)
    first, second = deskew(images[:3]), deskew(images[3:])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(preprocess.preprocessed(images[:3], "deskew"), first)
    real, made = preprocess.deskew, []
    monkeypatch.setattr(preprocess, "deskew", lambda images: made.append(1) or real(images))
    np.testing.assert_array_equal(preprocess.preprocessed(images[:3], "deskew"), first)
    assert made == []  # from the cache
    np.testing.assert_array_equal(preprocess.preprocessed(images[3:], "deskew"), second)
    np.testing.assert_array_equal(preprocess.preprocessed(images[:3] / 255, "deskew"), real(images[:3] / 255))
    assert made == [1, 1]  # other images, other dtype: other copies


@pytest.mark.slow
def test_deskewed_mnist_with_default_settings_reaches_94_8_percent(mnist):
    from softmax_cli.config import TrainConfig
    from softmax_cli.metrics import loss_and_accuracy
    from softmax_cli.model import features
    from softmax_cli.train import Trainer, fit

    result = fit(Trainer(TrainConfig(preprocess="deskew"), mnist.n_features, mnist.n_classes),
                 preprocess.preprocessed(mnist.x_train, "deskew", key=mnist.fingerprint()), mnist.y_train)
    _, accuracy = loss_and_accuracy(result.W, result.b, features(deskew(mnist.x_test)), mnist.y_test)
    assert accuracy >= 0.948  # 0.9504 measured; raw pixels give 0.9276


@pytest.mark.slow
def test_the_shipped_best_config_reaches_95_percent(mnist):
    from softmax_cli.config import make_config
    from softmax_cli.metrics import loss_and_accuracy
    from softmax_cli.model import features
    from softmax_cli.train import Trainer, fit

    config = make_config(REPO / "configs" / "best.toml")
    assert config.preprocess == "deskew"
    result = fit(Trainer(config, mnist.n_features, mnist.n_classes),
                 preprocess.preprocessed(mnist.x_train, "deskew", key=mnist.fingerprint()), mnist.y_train)
    _, accuracy = loss_and_accuracy(result.W, result.b, features(deskew(mnist.x_test)), mnist.y_test)
    assert accuracy >= 0.950  # 0.9517 measured (settings chosen on a validation split, see the file)

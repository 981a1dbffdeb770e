"""The cache's copies are verified on every read: an edited copy, CRCs and key intact, is made again."""

import numpy as np

from softmax_cli.data import cache, load_dataset


def test_a_cached_copy_edited_and_saved_again_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTMAX_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (200, 8, 8), dtype=np.uint8), np.arange(200) % 4
    np.savez_compressed(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    first = load_dataset(tmp_path / "data.npz", name=None)  # a compressed source: kept as an uncompressed copy
    for copy in (tmp_path / "cache").glob("*.npz"):  # the data set's copy (beside its fingerprint's)
        with np.load(copy) as kept:
            arrays = {name: kept[name] for name in kept.files}
        if "y_train" in arrays:
            break
    arrays["y_train"] = (arrays["y_train"] + 1) % 4  # every label shifted, then saved as a valid .npz again
    np.savez(copy, **arrays)
    again = load_dataset(tmp_path / "data.npz", name=None)
    np.testing.assert_array_equal(again.y_train, y)  # made again from the source, not read from the edited copy
    assert again.fingerprint() == first.fingerprint()


def test_a_cached_array_zeroed_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTMAX_CACHE_DIR", str(tmp_path))
    assert cache.cached_array("deskew something", lambda: np.arange(10)).tolist() == list(range(10))
    (copy,) = tmp_path.glob("*.npz")
    with np.load(copy) as kept:
        arrays = {name: kept[name] for name in kept.files}
    arrays["array"] = np.zeros_like(arrays["array"])
    np.savez(copy, **arrays)
    assert cache.cached_array("deskew something", lambda: np.arange(10)).tolist() == list(range(10))

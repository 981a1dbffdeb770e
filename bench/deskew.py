"""Deskewing on MNIST: how long it takes for all 70,000 images, and what it does for a linear softmax.

    python bench/deskew.py             # 5 timings of each, then raw vs deskew (defaults) and configs/best.toml
    python bench/deskew.py --runs 3

Each timing is a fresh child process: one loads the data and deskews all 70,000 images once (cold: nothing of
NumPy's or the allocator's is warm yet), the other reads the deskewed training set from a warm cache
(preprocess.preprocessed, in a scratch cache folder); the fastest of each is shown. Each model is trained on the whole
training set through the library (run.learn) and scored on the test set; training seconds are the loop's own.
Prints a markdown table; the data is $SOFTMAX_DATA (a folder or an .npz), else the shared MNIST copy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from measure import Failed, run
from mnist import data_path

HERE = Path(__file__).resolve().parent
BEST = HERE.parent / "configs" / "best.toml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold timings of deskewing, the fastest is shown")
    parser.add_argument("--time-once", choices=["deskew", "cached"], help=argparse.SUPPRESS)  # a timing's child
    args = parser.parse_args()
    if args.time_once:
        print(json.dumps({"seconds": deskew_seconds() if args.time_once == "deskew" else cached_seconds()}))
        return
    os.environ["SOFTMAX_DATA"] = str(data_path())
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SOFTMAX_CACHE_DIR"] = cache  # children inherit it: the user's own cache is left alone
        progress(f"deskewing 70,000 images: {args.runs} cold runs")
        cold = timing("deskew", args.runs)
        progress(f"the deskewed training set from a warm cache: {args.runs} runs after one that fills it")
        warm = timing("cached", args.runs, warm_up=True)
    rows = [accuracy_row(*case) for case in cases()]
    print(f"Deskewing all 70,000 MNIST images, cold: {cold}")
    print(f"The deskewed training set (60,000) from a warm cache, with the data's fingerprint: {warm}\n")
    print("| settings | preprocess | test accuracy | training seconds |")
    print("|---|---|---|---|")
    for name, preprocess, accuracy, seconds in rows:
        print(f"| {name} | {preprocess} | {accuracy:.2%} | {seconds:.2f} |")
    print(f"\nload average {load_at_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end")


def timing(what: str, runs: int, warm_up: bool = False) -> str:
    """Return the fastest and slowest seconds of runs child processes timing what, in words, or how they failed."""
    command = [sys.executable, __file__, "--time-once", what]
    try:
        if warm_up:
            run(command)
        seconds = [run(command).result()["seconds"] for _ in range(runs)]
    except Failed as e:
        return f"failed: {e}"
    return f"{min(seconds):.2f} s (fastest of {runs}; slowest {max(seconds):.2f} s)"


def cached_seconds() -> float:
    """Return the seconds this process takes to get the deskewed training set through the cache."""
    from softmax_cli.data import load_dataset
    from softmax_cli.preprocess import preprocessed

    dataset = load_dataset(data_path())
    started = time.perf_counter()
    preprocessed(dataset.x_train, "deskew", key=dataset.fingerprint())
    return time.perf_counter() - started


def deskew_seconds() -> float:
    """Return the seconds this process takes to deskew the training and test images together, the first time."""
    from softmax_cli.data import load_dataset
    from softmax_cli.preprocess import deskew

    dataset = load_dataset(data_path())
    images = np.concatenate([dataset.x_train, dataset.x_test])
    started = time.perf_counter()
    deskew(images)
    return time.perf_counter() - started


def cases():
    """Return (name, TrainConfig) of each row: the defaults on raw and on deskewed pixels, and configs/best.toml."""
    from softmax_cli.config import TrainConfig, make_config

    return [("defaults", TrainConfig()), ("defaults", TrainConfig(preprocess="deskew")),
            (f"`{BEST.relative_to(HERE.parent)}`", make_config(BEST))]


def accuracy_row(name: str, config) -> tuple[str, str, float, float]:
    """Return (name, preprocess, test accuracy, training seconds) of config trained on the whole training set."""
    from softmax_cli import model
    from softmax_cli.data import load_dataset
    from softmax_cli.metrics import loss_and_accuracy
    from softmax_cli.preprocess import preprocessed
    from softmax_cli.run import learn

    progress(f"training: {name}, preprocess {config.preprocess}")
    dataset = load_dataset(data_path())
    _, result = learn(config, preprocessed(dataset.x_train, config.preprocess, key=dataset.fingerprint()), dataset.y_train,
                      dataset.n_classes)
    _, accuracy = loss_and_accuracy(result.W, result.b, model.features(preprocessed(dataset.x_test, config.preprocess)),
                                    dataset.y_test)
    return name, config.preprocess, accuracy, result.train_seconds


def progress(message: str) -> None:
    """Tell the person running the benchmark what it is doing, on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

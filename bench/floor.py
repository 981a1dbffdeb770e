"""How far an epoch of the default recipe is from its floor, measured in one run, on MNIST's own pixels.

Two loops: the compiled epoch (_epoch.c, what every run takes where the extension was built), in the form this
processor takes (one thread) and in the form for any processor, and the NumPy loop (SOFTMAX_NUMPY_LOOP, or no C
compiler at install). The compiled epoch multiplies only the pixels that are not zero (19 % of MNIST's); the compressed rows
are made once a fit, and are timed here on their own. The floor is the two matrix products of every step alone
(logits x @ W.T and gradient G.T @ x, dense, float32, one BLAS thread, the recipe's batch size), on batches
already cast: no loop that multiplies dense batches can do less. Beside it, the NumPy loop's breakdown by phase, each phase timed alone
over the epoch's 500 steps: gather and cast, products, softmax (the fused kernel), update (momentum, learning
rate, averaging), and the overhead (the rest: Python, slicing, argmax).

    python bench/floor.py [--repeats 5]

Each figure is the best of the repeats (the least disturbed by other work on the machine); the load is printed.
The data is $SOFTMAX_DATA, else the shared MNIST copy (bench/mnist.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from mnist import data_path
from softmax_cli import model
from softmax_cli.data import load_dataset
from softmax_cli.config import TrainConfig
from softmax_cli import train
from softmax_cli.train import Trainer, steps_per_epoch

def best_of(repeats: int, runs: dict) -> dict:
    """Return, for each named run() of runs, the fewest seconds it took in repeats rounds.

    Each round calls every run once, in turn, so that all of them meet the same moments of the machine's load:
    a ratio of two figures is then fair even when the load moves during the measurement.
    """
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: min(seconds) for name, seconds in times.items()}


def _numpy_epoch(trainer, pixels, labels) -> None:
    os.environ["SOFTMAX_NUMPY_LOOP"] = "1"
    try:
        trainer.train_epoch(pixels, labels)
    finally:
        del os.environ["SOFTMAX_NUMPY_LOOP"]


def _epoch_for_any_processor(compiled, trainer, pixels, labels) -> None:
    compiled.use_instructions("any")
    try:
        trainer.train_epoch(pixels, labels)
    finally:
        compiled.use_instructions("best")


def measure(repeats: int) -> dict:
    """Return the seconds of an epoch, of its floor and of each phase, and the ratio epoch / floor."""
    rng = np.random.default_rng(0)
    dataset = load_dataset(data_path())
    pixels, labels = dataset.x_train.reshape(len(dataset.x_train), -1), dataset.y_train
    N, D, K = *pixels.shape, dataset.n_classes
    # The default recipe's batch size, in a run whose schedule never reaches 0 while we measure
    config = TrainConfig(epochs=10 * repeats)
    batch_size, n_steps = steps_per_epoch(config, N)
    compiled = train._compiled()
    trainers = {loop: Trainer(config, D, K) for loop in ("numpy", "compiled", "compiled_any")}
    for loop, trainer in trainers.items():  # warm up: first-touch pages, BLAS set-up
        _numpy_epoch(trainer, pixels, labels) if loop == "numpy" else trainer.train_epoch(pixels, labels)

    x = np.empty((batch_size, D + 1), np.float32)
    x[:, D] = 255.0
    raw = np.empty((batch_size, D), np.uint8)
    Z = np.empty((batch_size, K), np.float32)
    gradient = np.empty((K, D + 1), np.float32)
    weights = (rng.normal(size=(K, D + 1)) * 1e-3).astype(np.float32)
    order = rng.permutation(N)
    true_index = np.arange(batch_size) * K + labels[:batch_size]
    velocity, update, weight_sum = np.zeros_like(weights), np.empty_like(weights), np.zeros(weights.shape)

    def gather_and_cast():
        for start in range(0, N, batch_size):
            np.take(pixels, order[start:start + batch_size], axis=0, out=raw)
            np.copyto(x[:, :D], raw)

    def products():
        for _ in range(n_steps):
            np.matmul(x, weights.T, out=Z)
            np.matmul(Z.T, x, out=gradient)

    gather_and_cast()  # real pixels in x for the products
    logits = x @ weights.T

    def softmax():
        for _ in range(n_steps):
            np.copyto(Z, logits)
            model.fused_cross_entropy_grad(Z, true_index)

    def copies():  # what softmax() spends on resetting Z, taken off its figure
        for _ in range(n_steps):
            np.copyto(Z, logits)

    def updates():
        for step in range(n_steps):
            np.multiply(gradient, 1e-9, out=gradient)
            np.multiply(velocity, 0.9, out=velocity)
            np.add(velocity, gradient, out=velocity)
            np.multiply(velocity, 1e-9, out=update)
            np.subtract(weights, update, out=weights)
            if step >= n_steps // 2:
                np.add(weight_sum, weights, out=weight_sum)

    with threadpool_limits(limits=1, user_api="blas"):
        figures = best_of(repeats, {
            "epoch": lambda: _numpy_epoch(trainers["numpy"], pixels, labels),
            "epoch_compiled": lambda: trainers["compiled"].train_epoch(pixels, labels),
            "epoch_compiled_any": lambda: _epoch_for_any_processor(compiled, trainers["compiled_any"], pixels, labels),
            "rows": lambda: compiled.Rows(pixels),
            "floor": products,
            "gather_and_cast": gather_and_cast,
            "softmax_and_copies": softmax,
            "copies": copies,
            "update": updates,
        })
    figures["softmax"] = figures.pop("softmax_and_copies") - figures.pop("copies")
    figures["products"] = figures["floor"]
    figures["overhead"] = figures["epoch"] - sum(figures[name] for name in
                                                 ("gather_and_cast", "products", "softmax", "update"))
    figures["ratio"] = figures["epoch"] / figures["floor"]
    figures["ratio_compiled"] = figures["epoch_compiled"] / figures["floor"]
    figures["ratio_compiled_any"] = figures["epoch_compiled_any"] / figures["floor"]
    figures["instructions"] = compiled.use_instructions("best")
    figures["steps"], figures["shape"] = n_steps, [N, D]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    figures = measure(args.repeats)
    figures["load"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(figures))
        return
    print(f"load {figures['load']:.2f}; best of {args.repeats}; batch 120, {figures['steps']} steps, "
          f"{figures['shape'][0]}x{figures['shape'][1]} uint8 (MNIST)")
    print(f"{'epoch, compiled':<16}{figures['epoch_compiled'] * 1e3:8.1f} ms   {figures['ratio_compiled']:.2f}x the floor"
          f"   ({figures['instructions']} instructions, one thread)")
    print(f"{'  any processor':<16}{figures['epoch_compiled_any'] * 1e3:8.1f} ms   "
          f"{figures['ratio_compiled_any']:.2f}x the floor   (the form for processors without AVX2)")
    print(f"{'  compressing':<16}{figures['rows'] * 1e3:8.1f} ms   (the rows, once a fit)")
    print(f"{'epoch, NumPy':<16}{figures['epoch'] * 1e3:8.1f} ms   {figures['ratio']:.2f}x the floor; its phases:")
    print(f"{'floor':<16}{figures['floor'] * 1e3:8.1f} ms   (the two matrix products of every step)")
    for name in ("gather_and_cast", "products", "softmax", "update", "overhead"):
        share = figures[name] / figures["epoch"]
        print(f"  {name.replace('_', ' '):<14}{figures[name] * 1e3:8.1f} ms   {share:5.0%}")


if __name__ == "__main__":
    main()

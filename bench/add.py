"""`softmax train --add` on digits by writers who are not in MNIST: how much a few labelled examples help.

    python bench/add.py                 # choose the weight on the tuning half, then report on the other half
    python bench/add.py --draws 3

The proxy for "a person's own digits": scikit-learn's load_digits (1,797 digits by writers not in MNIST, 8x8
pixels of 0..16), each enlarged to a 64x64 PNG of dark ink on white paper (bicubic, as a photo or scan of a digit
would be) and read by the same code as `softmax train --add` and `softmax predict` (data.examples.read_examples,
images.load_image). The digits are split once, seeded, in two halves per class:
- the tuning half is where --add-weight's default was chosen: k examples of each class are drawn from it and added
  to 50,000 of MNIST's training images, and the rest of that half is read, with the 10,000 other training images
  as MNIST's validation set (never its test set);
- the report half is only used with the weight given (default: the tool's): k examples of each class are drawn from
  it and added, and the figures are on the rest of that half, before (MNIST alone) and after, with MNIST's test
  accuracy.
Every model is trained through run.train_model with the default settings and --preprocess deskew. Prints markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mnist import data_path  # noqa: E402

WEIGHTS = (1, 25, 50, 100, 200, 400, 800, 1600)
SIDE = 64
SPLIT_SEED = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 50], help="examples added of each class")
    parser.add_argument("--draws", type=int, default=5, help="random draws of the examples for each figure")
    parser.add_argument("--weight", type=float, help="the --add-weight reported (default: the tool's default)")
    parser.add_argument("--no-tuning", action="store_true", help="only the report half, with --weight")
    args = parser.parse_args()
    from softmax_cli.config import ADD_WEIGHT, TrainConfig
    from softmax_cli.data import load_dataset
    from softmax_cli.errors import TrainingDiverged

    weight = ADD_WEIGHT.default if args.weight is None else args.weight
    load_at_start = os.getloadavg()[0]
    mnist = load_dataset(data_path())
    # Tuning never sees MNIST's test set: its MNIST figure is on 10,000 images held out of the training set.
    mnist_tuning = dataclasses.replace(mnist, x_train=mnist.x_train[:50_000], y_train=mnist.y_train[:50_000],
                                       x_test=mnist.x_train[50_000:], y_test=mnist.y_train[50_000:], cache_key=None)
    config = TrainConfig(preprocess="deskew")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        files, labels = write_photos(scratch / "photos")
        framed = frame_all(files, mnist)
        tune, report = halves(labels)
        if not args.no_tuning:
            print("Tuning half: other digits read (and MNIST validation accuracy), mean of the draws\n")
            print("| --add-weight | " + " | ".join(f"{k} of each digit" for k in args.per_class) + " |")
            print("|---|" + "---|" * len(args.per_class))
            base = train(mnist_tuning, config, scratch, None)
            cells = {0: [f"{accuracy(base, framed[tune], labels[tune]):.1%} ({base.test_accuracy:.2%})"] *
                     len(args.per_class)}
            for k in args.per_class:
                scores = {w: ([], []) for w in WEIGHTS}
                for draw in range(args.draws):
                    added, held = drawn(labels, tune, k, draw)
                    examples = read(files, labels, added, scratch / f"tune{k}-{draw}", mnist)
                    for w in WEIGHTS:
                        try:
                            run = train(mnist_tuning, config, scratch, examples, w)
                        except TrainingDiverged:
                            scores[w][0].append(None)
                            continue
                        scores[w][0].append(accuracy(run, framed[held], labels[held]))
                        scores[w][1].append(run.test_accuracy)
                for w, (other, validation) in scores.items():
                    diverged = sum(score is None for score in other)
                    other = [score for score in other if score is not None]
                    cells.setdefault(w, []).append(
                        (f"{np.mean(other):.1%} ({np.mean(validation):.2%})" if other else "")
                        + (f" diverged in {diverged} of {len(scores[w][0])}" if diverged else ""))
                progress(f"tuned {k} a class")
            for w, row in cells.items():
                print(f"| {w or 'none added'} | " + " | ".join(row) + " |")
            print()
        base = train(mnist, config, scratch, None)
        rows = []
        for k in args.per_class:
            before, after, mnist_after, seconds = [], [], [], []
            for draw in range(args.draws):
                added, held = drawn(labels, report, k, 100 + draw)
                examples = read(files, labels, added, scratch / f"report{k}-{draw}", mnist)
                start = time.perf_counter()
                run = train(mnist, config, scratch, examples, weight)
                seconds.append(time.perf_counter() - start)
                before.append(accuracy(base, framed[held], labels[held]))
                after.append(accuracy(run, framed[held], labels[held]))
                mnist_after.append(run.test_accuracy)
            rows.append((k, len(held), before, after, base.test_accuracy, mnist_after, seconds))
    print(f"Report half, --add-weight {weight:g}: the same writers' other digits, and MNIST's test set\n")
    print("| examples added | other digits | read before | read after | MNIST test before | MNIST test after "
          "| train_model seconds |")
    print("|---|---|---|---|---|---|---|")
    for k, n, before, after, mnist_before, mnist_after, seconds in rows:
        print(f"| {k} of each digit | {n} | {spread(before)} | {spread(after)} | {mnist_before:.2%} "
              f"| {spread(mnist_after)} | {np.median(seconds):.2f} |")
    print(f"\n{args.draws} draws of the examples each (mean, and range); load average {load_at_start:.1f} at the start "
          f"and {os.getloadavg()[0]:.1f} at the end")


def write_photos(folder: Path) -> tuple[list[Path], np.ndarray]:
    """Write every load_digits digit as a SIDE x SIDE PNG, dark ink on white; return the files and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True)
    files = []
    for i, image in enumerate(digits.images):
        paper = Image.fromarray((255 - image * (255 / 16)).astype(np.uint8))
        files.append(folder / f"{i}.png")
        paper.resize((SIDE, SIDE), Image.Resampling.BICUBIC).save(files[-1])
    return files, digits.target.astype(np.int64)


def frame_all(files, mnist) -> np.ndarray:
    """Return every photo framed as predict frames it for an MNIST model: float32 (n, 28*28)."""
    from softmax_cli.images import load_image

    return np.array([load_image(file, mnist.image_shape, convention=mnist.image_convention()) for file in files])


def halves(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the tuning half and the report half of the digits' indices, half of each class in each, seeded."""
    rng = np.random.default_rng(SPLIT_SEED)
    tune, report = [], []
    for k in range(10):
        members = rng.permutation(np.flatnonzero(labels == k))
        tune.append(members[: len(members) // 2])
        report.append(members[len(members) // 2:])
    return np.concatenate(tune), np.concatenate(report)


def drawn(labels, pool, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return k indices of each class drawn from pool (seeded), and the rest of pool."""
    rng = np.random.default_rng(seed)
    added = np.concatenate([rng.choice(pool[labels[pool] == c], k, replace=False) for c in range(10)])
    return added, np.setdiff1d(pool, added)


def read(files, labels, added, folder: Path, mnist):
    """Return the examples `softmax train --add folder` reads, folder holding the added photos in class folders."""
    from softmax_cli.data.examples import read_examples

    for i in added:
        target = folder / str(int(labels[i]))
        target.mkdir(parents=True, exist_ok=True)
        (target / files[i].name).symlink_to(files[i])
    return read_examples([folder], mnist.class_names, mnist.image_shape, mnist.image_convention())


def train(mnist, config, scratch: Path, examples, weight=None):
    from softmax_cli.run import train_model

    return train_model(mnist, config, scratch / "model.npz", added=examples, add_weight=weight)


def accuracy(run, framed: np.ndarray, labels: np.ndarray) -> float:
    """Return how many of the framed digits the run's model reads right, preprocessed as predict does."""
    from softmax_cli.model import features
    from softmax_cli.preprocess import preprocessed

    rows = features(preprocessed(framed.reshape(-1, 28, 28), "deskew"))
    return float(np.mean((rows @ run.fit.W + run.fit.b).argmax(axis=1) == labels))


def spread(values) -> str:
    return f"{np.mean(values):.1%} ({min(values):.1%}-{max(values):.1%})"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

"""The drawing page's "Teach the model" (POST /api/learn, teach.py): how fast a lesson answers, and how much it helps.

    python bench/teach.py               # seconds of a lesson of 50 and 500 drawings, quiet and beside a busy core
    python bench/teach.py --accuracy    # also: what a lesson of 5 (and 50) of each digit does, beside train --add

Seconds: a deskewed MNIST model is served in-process (the app `softmax serve` runs) with its data set, and the
drawings are posted as the page posts them (the .npz it builds); the first lesson also reads and deskews the data
set, the others are the median of 3. The drawings are scikit-learn's digits as photos (bench/add.py's proxy for a
person's handwriting: writers not in MNIST), framed as the page frames a drawing.

Accuracy, with bench/add.py's protocol: the digits are split once into a tuning half and a report half.
TEACH_EPOCHS, LESSON_WEIGHT and LESSON_LOSS are chosen on the tuning half (MNIST's last 10,000 training images held
out as its validation set); the figures are on the report half only, for three models served (`make train`'s
defaults, deskewed, the preset "best"): k of each digit drawn from it are taught, the rest of that half is read
before and after, beside `softmax train --add` of the same examples (run.train_model). The last line printed is the figures as JSON,
with the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import add  # noqa: E402  (bench/add.py: the proxy digits and their halves)
from mnist import data_path  # noqa: E402

TUNED = ((1, 50), (1, 100), (1, 150), (1, 200), (2, 100), (2, 200))  # (epochs, weight of an example) tried


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", action="store_true", help="also measure what a lesson does to the reading")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the taught digits for each figure")
    args = parser.parse_args()
    from softmax_cli.config import TrainConfig
    from softmax_cli.data import load_dataset
    from softmax_cli.run import train_model

    load_at_start = os.getloadavg()[0]
    mnist = load_dataset(data_path())
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_path = scratch / "deskew.npz"
        train_model(mnist, TrainConfig(preprocess="deskew"), model_path)
        files, labels = add.write_photos(scratch / "photos")
        framed = add.frame_all(files, mnist).reshape(-1, *mnist.image_shape)
        framed = np.rint(framed * 255).astype(np.uint8)  # what the page sends: its framed drawings, 0..255
        figures["seconds"] = {"quiet": lesson_seconds(model_path, mnist, framed, labels)}
        with busy_core():
            figures["seconds"]["busy"] = lesson_seconds(model_path, mnist, framed, labels)
        if args.accuracy:
            figures["accuracy"] = accuracy(mnist, model_path, framed, labels, files, scratch, args.draws)
    figures["load"] = [load_at_start, os.getloadavg()[0]]
    print_tables(figures)
    print(json.dumps(figures))


def drawings_npz(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Return the .npz the page builds of its labelled drawings (and posts to /api/learn)."""
    buffer = io.BytesIO()
    np.savez(buffer, x_train=images, y_train=labels.astype(np.uint8), x_test=images,
             y_test=labels.astype(np.uint8), class_names=np.array(list("0123456789")), framing=np.array(["mnist"]))
    return buffer.getvalue()


def lesson_seconds(model_path: Path, mnist, framed: np.ndarray, labels: np.ndarray) -> dict:
    """Return the seconds of POST /api/learn with 50 and 500 drawings (first lesson, then the median of 3)."""
    from starlette.testclient import TestClient

    from softmax_cli.serve.app import create_app
    from softmax_cli.store import load_model
    from softmax_cli.teach import Teacher

    saved = load_model(model_path)
    app = create_app(saved, teacher=Teacher(saved, lambda: mnist))
    rng = np.random.default_rng(0)

    def posted(n: int) -> float:
        chosen = rng.choice(len(labels), n, replace=False)
        body = drawings_npz(framed[chosen], labels[chosen])
        started = time.perf_counter()
        answer = client.post("/api/learn", content=body, headers={"Content-Type": "application/zip"})
        assert answer.status_code == 200, answer.text
        return time.perf_counter() - started

    with TestClient(app, base_url="http://localhost:8000") as client:
        seconds = {"first_50": posted(50)}  # the first lesson also reads and deskews the data set
        for n in (50, 500):
            seconds[f"lesson_{n}"] = float(np.median([posted(n) for _ in range(3)]))
    return seconds


class busy_core:
    """A process burning one core while the block runs (a user's laptop is busy)."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


MODELS = {  # the models served: `make train`'s, the deskewed defaults, the preset "best" (deskew, mse, 30 epochs)
    "default": {},
    "deskew": {"preprocess": "deskew"},
    "best": {"preprocess": "deskew", "loss": "mse", "epochs": 30},
}


def accuracy(mnist, model_path: Path, framed, labels, files, scratch: Path, draws: int) -> dict:
    """Return the tuning table (TEACH_EPOCHS, LESSON_WEIGHT, LESSON_LOSS) and the report half's figures for each
    model of MODELS, beside train --add's."""
    import softmax_cli.teach as teach
    from softmax_cli.config import TrainConfig
    from softmax_cli.data.examples import read_drawings
    from softmax_cli.run import train_model
    from softmax_cli.store import load_model

    tune, report = add.halves(labels)
    mnist_tuning = dataclasses.replace(mnist, x_train=mnist.x_train[:50_000], y_train=mnist.y_train[:50_000],
                                       x_test=mnist.x_train[50_000:], y_test=mnist.y_train[50_000:], cache_key=None)

    def lessons(saved, data, pool, k, seed):
        teacher = teach.Teacher(saved, lambda: data)
        for draw in range(draws):
            taught, held = add.drawn(labels, pool, k, seed + draw)
            yield taught, held, teacher.lesson(read_drawings(drawings_npz(framed[taught], labels[taught]),
                                                             mnist.class_names, mnist.image_shape, "mnist"))

    def tried(saved, name):
        other, validation = [], []
        for _, held, lesson in lessons(saved, mnist_tuning, tune, 5, 0):
            other.append(read_right(lesson.model, framed[held], labels[held]))
            validation.append(lesson.test_after)
        result["tuning"][name] = {"other": float(np.mean(other)), "validation": float(np.mean(validation))}
        progress(f"tuned {name}")

    tuning_models = {}
    for name in ("deskew", "best"):
        train_model(mnist_tuning, TrainConfig(**MODELS[name]), scratch / f"tuning-{name}.npz")
        tuning_models[name] = load_model(scratch / f"tuning-{name}.npz")
    deskew = tuning_models["deskew"]
    result = {"tuning": {"deskew, nothing taught": {"other": read_right(deskew, framed[tune], labels[tune]),
                                                    "validation": deskew.metadata["test_accuracy"]}}, "report": {}}
    chosen = teach.TEACH_EPOCHS, teach.LESSON_WEIGHT, teach.LESSON_LOSS
    for epochs, weight in TUNED:
        teach.TEACH_EPOCHS, teach.LESSON_WEIGHT = epochs, weight
        tried(deskew, f"deskew, {epochs} epochs, weight {weight:g}")
    teach.TEACH_EPOCHS, teach.LESSON_WEIGHT = chosen[:2]
    best = tuning_models["best"]
    result["tuning"]["best, nothing taught"] = {"other": read_right(best, framed[tune], labels[tune]),
                                                "validation": best.metadata["test_accuracy"]}
    for loss in ("mse", "cross-entropy"):
        teach.LESSON_LOSS = loss
        tried(best, f"best, a lesson with the loss {loss}")
    teach.LESSON_LOSS = chosen[2]

    for name, settings in MODELS.items():
        config = TrainConfig(**settings)
        path = scratch / f"{name}.npz"
        train_model(mnist, config, path)
        saved = load_model(path)
        for k in ((5, 50) if name == "deskew" else (5,)):
            rows = []
            for taught, held, lesson in lessons(saved, mnist, report, k, 100):
                trained = train_model(mnist, config, scratch / "added.npz", added=add.read(
                    files, labels, taught, scratch / f"report-{name}-{k}-{len(rows)}", mnist))
                rows.append({"before": read_right(saved, framed[held], labels[held]),
                             "page": read_right(lesson.model, framed[held], labels[held]),
                             "page_own_before": lesson.before, "page_own_after": lesson.after,
                             "page_mnist": lesson.test_after, "page_seconds": lesson.seconds,
                             "add": read_right(load_model(scratch / "added.npz"), framed[held], labels[held]),
                             "add_mnist": trained.test_accuracy, "mnist_before": lesson.test_before,
                             "held": int(len(held))})
            result["report"][f"{name}, {k} of each digit"] = rows
            progress(f"reported {name}, {k} a class")
    return result


def read_right(saved, framed: np.ndarray, labels: np.ndarray) -> float:
    """Return how many of the framed digits (uint8) the model reads right, preprocessed as predict does."""
    from softmax_cli.model import features
    from softmax_cli.preprocess import preprocessed

    rows = features(preprocessed(framed, saved.preprocess))
    return float(np.mean((rows @ saved.W + saved.b).argmax(axis=1) == labels))


def print_tables(figures: dict) -> None:
    seconds = figures["seconds"]
    print("POST /api/learn, seconds (deskewed MNIST model; the first lesson also reads and deskews MNIST)\n")
    print("| | first lesson, 50 drawings | 50 drawings | 500 drawings |")
    print("|---|---|---|---|")
    for case, s in seconds.items():
        print(f"| {case} | {s['first_50']:.2f} | {s['lesson_50']:.2f} | {s['lesson_500']:.2f} |")
    if "accuracy" in figures:
        tuning, report = figures["accuracy"]["tuning"], figures["accuracy"]["report"]
        print("\nTuning half, 5 of each digit taught: the other digits read, and MNIST's validation accuracy\n")
        print("| a lesson of | other digits | MNIST validation |")
        print("|---|---|---|")
        for tried, row in tuning.items():
            print(f"| {tried} | {row['other']:.1%} | {row['validation']:.2%} |")
        print("\nReport half: the same writers' other digits, read before and after (mean, and range of the draws)\n")
        print("| model, taught | other digits | before | page's lesson | train --add | page says (before -> after) "
              "| MNIST test: before, page, --add | lesson seconds |")
        print("|---|---|---|---|---|---|---|---|")
        for k, rows in report.items():
            column = lambda name: [row[name] for row in rows]  # noqa: E731
            print(f"| {k} | {rows[0]['held']} | {spread(column('before'))} | {spread(column('page'))} "
                  f"| {spread(column('add'))} | {np.mean(column('page_own_before')):.1%} -> "
                  f"{np.mean(column('page_own_after')):.1%} | {rows[0]['mnist_before']:.2%}, "
                  f"{np.mean(column('page_mnist')):.2%}, {np.mean(column('add_mnist')):.2%} "
                  f"| {np.median(column('page_seconds')):.2f} |")
    print(f"\nload average {figures['load'][0]:.1f} at the start and {figures['load'][1]:.1f} at the end")


spread, progress = add.spread, add.progress


if __name__ == "__main__":
    main()

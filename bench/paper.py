"""Digits on lined and squared paper, and written with a thin pen: how well `predict` reads them.

    python bench/paper.py                    # 300 digits per set, the default and the deskew model
    python bench/paper.py --n 100 --first 9000

The protocol. MNIST test digits (--first onwards, --n of them; the figures reported are digits 0-299, the rules of
images.py were tuned on digits 9000-9299) are redrawn as the images people have (tests/redraw.py):
- plain: enlarged 4-8 times (bilinear), on a sheet twice its side of light paper, photographed (a brightness ramp
  of 5-12 % across the sheet, noise of sd 0.03) or scanned (evenly lit, noise sd 0.005);
- lined / squared: the same digit and sheet with rules 1-3 px thick, light (the paper 7-15 % darker under them) or
  dark (30-50 % darker), 0.9-1.3 digit heights apart (lined) or 0.45-0.65 (squared), turned by up to 2 degrees
  (photographed) or 0.5 (scanned); the digit's ink is laid over the rules;
- thin and thick pens: the digit enlarged 4-8 times, thinned to its skeleton and drawn along it with a pen 1.5-3 px
  wide (thin) or 12 % of the digit's 20-pixel box height (thick, MNIST's stroke), dark on white.
The plain and ruled versions of a digit differ only by the rules: same size, place, paper, light and noise. Every image goes
through predict's path (images.to_mnist, then the model's preprocessing); the models are trained by run.learn on
the whole training set: the defaults, and the preset "best" (deskewed). Prints a markdown table of accuracies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mnist import data_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import redraw  # noqa: E402  (the test suite's redrawing of MNIST digits, shared so that bench and tests agree)

def accuracy(saved, grays: list[np.ndarray], labels: np.ndarray) -> tuple[float, int]:
    """Return the fraction of the images the model reads right (an image refused counts as wrong), and the refusals."""
    from softmax_cli.images import NoDigit, to_mnist
    from softmax_cli.model import features, predict_proba
    from softmax_cli.preprocess import preprocessed

    framed, refused = [], 0
    for gray in grays:
        try:
            framed.append(to_mnist(gray))
        except NoDigit:
            refused += 1
            framed.append(np.zeros(28 * 28, np.float32))
    rows = features(preprocessed(np.stack(framed).reshape(-1, 28, 28), saved.preprocess))
    return float((predict_proba(saved.W, saved.b, rows).argmax(axis=1) == labels).mean()), refused


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="digits per set")
    parser.add_argument("--first", type=int, default=0, help="the first MNIST test digit used")
    args = parser.parse_args()
    from softmax_cli.config import TrainConfig, make_config
    from softmax_cli.data import load_dataset
    from softmax_cli.run import learn

    mnist = load_dataset(data_path())
    digits, labels = mnist.x_test[args.first : args.first + args.n], mnist.y_test[args.first : args.first + args.n]
    models = {"default": TrainConfig(), "deskew (best)": make_config("best")}
    saved = {name: _saved(learn(config, mnist.x_train, mnist.y_train, 10)[1], config) for name, config in models.items()}
    sets = {name: redraw.digits_on_paper(digits, name, seed=0 if redraw.PAPERS[name][1] else 1)
            for name in redraw.PAPERS}
    sets["thick pen"] = redraw.digits_with_pen(digits, False, 100)
    sets["thin pen"] = redraw.digits_with_pen(digits, True, 100)
    print(f"| digits {args.first}-{args.first + args.n - 1} | " + " | ".join(saved) + " |")
    print("|---|" + "---|" * len(saved))
    for name, grays in sets.items():
        cells = []
        for model in saved.values():
            right, refused = accuracy(model, grays, labels)
            cells.append(f"{100 * right:.1f} %" + (f" ({refused} refused)" if refused else ""))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def _saved(result, config):
    from types import SimpleNamespace

    return SimpleNamespace(W=result.W, b=result.b, preprocess=config.preprocess)


if __name__ == "__main__":
    main()

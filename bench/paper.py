"""Digits on lined and squared paper, and written with a thin pen: how well `predict` reads them.

    python bench/paper.py                    # 300 digits per set, the default and the deskew model
    python bench/paper.py --n 100 --first 9000

The protocol. MNIST test digits (--first onwards, --n of them; the figures reported are digits 0-299, the rules of
images.py were tuned on digits 9000-9299) are redrawn as the images people have (tests/redraw.py):
- plain: enlarged 4-8 times (bilinear), on a sheet twice its side of light paper, photographed (a brightness ramp
  of 5-12 % across the sheet, noise of sd 0.03) or scanned (evenly lit, noise sd 0.005);
- lined / squared, light and dark, photographed and scanned (all 8): the same digit and sheet with rules 1-3 px
  thick, light (the paper 7-15 % darker under them) or dark (30-50 % darker), 0.9-1.3 digit heights apart (lined)
  or 0.45-0.65 (squared), turned by up to 2 degrees (photographed) or 0.5 (scanned); the digit's ink is laid over
  the rules;
- thin and thick pens: the digit enlarged 4-8 times, thinned to its skeleton and drawn along it with a pen 1.5-3 px
  wide (thin) or 12 % of the digit's 20-pixel box height (thick, MNIST's stroke), dark on white.
The plain and ruled versions of a digit differ only by the rules: same size, place, paper, light and noise. Every image goes
through predict's path (images.to_mnist, then the model's preprocessing); the models are trained by run.learn on
the whole training set: the defaults, and the preset "best" (deskewed). Prints a markdown table of accuracies, and
for each ruled set its gap to the same digits on plain paper photographed or scanned as it is (for the thin pen, to
the thick pen), in points for each model, PASS when no gap is over 5 points.
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
    print(f"| digits {args.first}-{args.first + args.n - 1} | " + " | ".join(saved) + " | gap to plain | within "
          f"{100 * WITHIN:.0f} points |")
    print("|---|" + "---|" * (len(saved) + 2))
    read = {}
    for name, grays in sets.items():
        read[name] = [accuracy(model, grays, labels) for model in saved.values()]
        cells = [f"{100 * right:.1f} %" + (f" ({refused} refused)" if refused else "") for right, refused in read[name]]
        plain = _plain(name)
        if plain is not None:
            gaps = [100 * (read[plain][m][0] - read[name][m][0]) for m in range(len(saved))]
            cells += [" / ".join(f"{gap:+.1f}" for gap in gaps), "PASS" if max(gaps) <= 100 * WITHIN else "FAIL"]
        else:
            cells += ["", ""]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


WITHIN = 0.05  # the promise: ruled paper read within 5 points of plain paper, a thin pen of a thick one


def _plain(name: str) -> str | None:
    """Return the set a set is compared with (the same digits on plain paper, or with a thick pen); None if none."""
    if name == "thin pen":
        return "thick pen"
    kind, photographed, _ = redraw.PAPERS.get(name, (None, None, None))
    if kind is None:
        return None
    return "plain, photographed" if photographed else "plain, scanned"


def _saved(result, config):
    from types import SimpleNamespace

    return SimpleNamespace(W=result.W, b=result.b, preprocess=config.preprocess)


if __name__ == "__main__":
    main()

"""Benchmark softmax-cli against scikit-learn, Keras and the tutorials' NumPy recipe on this machine, in one run.

    python bench/run.py           # every method (several minutes); writes bench/out/
    python bench/run.py --quick   # skips `softmax train --lr 0.01 --epochs 1000`, Keras, full-batch NumPy and the scikit-learn curve;
                                  # writes bench/out/quick/

Writes results.md, results.json and time_to_accuracy.png, and prints the tables; a full run into bench/out also
writes docs/benchmarks.md and bench/figures/time_to_accuracy.png, which the documents show.
Every figure comes from a child process: its wall clock from start to exit, its peak memory, and the one JSON
line it prints. The data is $SOFTMAX_DATA (a folder or an .npz), else the shared MNIST copy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from measure import Failed, fastest, run
from mnist import data_path
from report import Row, Target, benchmarks_page, markdown, plot_time_to_accuracy, write_json

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SOFTMAX = str(Path(sys.executable).with_name("softmax"))  # the venv's console script, beside its python
TRAIN_REPEATS, HELP_REPEATS, PREDICT_REPEATS = 3, 10, 5
SKLEARN_CURVE_MAX_ITER = ["5", "10", "20", "50"]   # the curve's last point is the table's own fit, max_iter=100
HEAVY_MODULES = {"tensorflow", "keras"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip softmax train --lr 0.01 --epochs 1000, Keras, full-batch NumPy and the scikit-learn curve")
    parser.add_argument("--out", type=Path, help="folder for the results [default: bench/out, or bench/out/quick]")
    args = parser.parse_args()
    out = args.out or HERE / "out" / ("quick" if args.quick else "")
    os.environ["SOFTMAX_DATA"] = str(data_path())  # absolute, so every child reads the same copy
    # Children run as on a person's machine, where Python keeps the bytecode of the modules it compiles (pip did so
    # for the installed competitors; the warm-up does it for this editable package). A shell that switches that off
    # would make every child compile softmax-cli's modules anew, about 25 ms a process.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    about = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_at_start": os.getloadavg()[0],
        "data": os.environ["SOFTMAX_DATA"],
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        os.environ["SOFTMAX_CACHE_DIR"] = str(scratch / "cache")  # children inherit it; the user's cache is untouched
        warm_up(scratch, args.quick)
        rows = benchmark(scratch, args.quick)
        targets = check_targets(rows, scratch)
    about["load_average_at_end"] = os.getloadavg()[0]
    context = (
        f"MNIST, 60,000 training and 10,000 test images; measured {about['started'][:10]} on {about['machine']}; "
        f"load average {about['load_average_at_start']:.1f} at the start and {about['load_average_at_end']:.1f} "
        "at the end (other work on the machine slows every figure)."
    )
    table = markdown(list(rows.values()), targets, context)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table)
    write_json(out / "results.json", list(rows.values()), targets, about)
    plot_time_to_accuracy(out / "time_to_accuracy.png", list(rows.values()))
    print(table)
    print(f"written to {out}/: results.md, results.json, time_to_accuracy.png")
    if not args.quick and not args.out:  # a full run into the usual place is the one the documents quote
        (HERE.parent / "docs" / "benchmarks.md").write_text(benchmarks_page(table))
        plot_time_to_accuracy(HERE / "figures" / "time_to_accuracy.png", list(rows.values()))
        print("written: docs/benchmarks.md, bench/figures/time_to_accuracy.png")


def warm_up(scratch: Path, quick: bool) -> None:
    """Run each program once untimed, so that no timed run pays for a cold disk or for building the data cache."""
    progress("warming up")
    commands = [
        [SOFTMAX, "train", "--data", os.environ["SOFTMAX_DATA"], "--epochs", "1", "--model", str(scratch / "warm.npz")],
        [SOFTMAX, "train", "--data", os.environ["SOFTMAX_DATA"], "--epochs", "1", "--preprocess", "deskew",
         "--model", str(scratch / "warm.npz")],  # fills the deskewed training set's cache
        [PYTHON, "-c", "import sklearn.linear_model"],
    ]
    for i in range(TRAIN_REPEATS):  # caches that hold the decompressed data but no deskewed copy yet
        commands.append(["env", f"SOFTMAX_CACHE_DIR={scratch / f'cold-{i}'}", *commands[0]])
    if not quick:
        commands.append([PYTHON, "-c", "import keras"])
    for command in commands:
        try:
            run(command)
        except Failed:
            pass  # the timed run of the same program fails too, and says why in its row


def benchmark(scratch: Path, quick: bool) -> dict[str, Row]:
    """Return the table's rows, keyed by a short name, measured one after the other."""
    train = [SOFTMAX, "train", "--data", os.environ["SOFTMAX_DATA"], "--json"]
    sklearn = [PYTHON, str(HERE / "sklearn_logreg.py")]
    rows = {
        "softmax": measure(
            "softmax", "`softmax train` (defaults)",
            [[*train, "--model", str(scratch / f"default-{i}.npz")] for i in range(TRAIN_REPEATS)],
        )
    }
    if not rows["softmax"].problem:
        add_curve(rows["softmax"], [PYTHON, str(HERE / "softmax_curve.py"), rows["softmax"].output["model"]],
                  replaces=True)
    deskew = [*train, "--preprocess", "deskew"]
    rows["deskew"] = measure("deskew", "`softmax train --preprocess deskew`, warm cache",
                             [[*deskew, "--model", str(scratch / f"deskew-{i}.npz")] for i in range(TRAIN_REPEATS)])
    rows["deskew-cold"] = measure(
        "deskew-cold", "`softmax train --preprocess deskew`, cold cache (deskews 60,000 images)",
        [["env", f"SOFTMAX_CACHE_DIR={scratch / f'cold-{i}'}", *deskew, "--model", str(scratch / f"cold-{i}.npz")]
         for i in range(TRAIN_REPEATS)])
    rows["best"] = measure("best", "`softmax train --config configs/best.toml` (deskew, mse, 30 epochs)",
                           [[*train, "--config", str(HERE.parent / "configs" / "best.toml"),
                             "--model", str(scratch / "best.npz")]])
    # key, method, command, a command for more points of the curve, whether --quick skips it
    competitors = [
        ("card", "`softmax train --lr 0.01 --epochs 1000`",
         [*train, "--lr", "0.01", "--epochs", "1000", "--model", str(scratch / "card.npz")], None, True),
        ("sklearn", "scikit-learn `LogisticRegression()` (lbfgs, max_iter=100)", sklearn,
         [*sklearn, "--max-iter", *SKLEARN_CURVE_MAX_ITER], False),
        ("keras", "Keras `Dense(10, softmax)`, SGD(0.2), batch 32, 10 epochs", [PYTHON, str(HERE / "keras_dense.py")],
         None, True),
        ("numpy", "tutorials' full-batch NumPy float64, lr 0.01, 1000 steps",
         [PYTHON, str(HERE / "numpy_full_batch.py")], None, True),
    ]
    for key, method, command, curve_command, slow in competitors:
        if quick and slow:
            rows[key] = Row(key, method, problem="skipped (--quick)")
            continue
        rows[key] = measure(key, method, [command])
        if curve_command and not quick and not rows[key].problem:  # right away: under the same load as the row
            add_curve(rows[key], curve_command)
    for row in rows.values():
        if row.whole_seconds is not None and rows["softmax"].whole_seconds:
            row.ratio = row.whole_seconds / rows["softmax"].whole_seconds
    return rows


def measure(key: str, method: str, commands: list[list[str]]) -> Row:
    """Return the row of the fastest of one run of each command; a failure becomes the row's problem."""
    progress(f"{method}: {len(commands)} run{'s' if len(commands) > 1 else ''}")
    row = Row(key, method, runs=len(commands))
    try:
        finished = fastest(commands)
        row.output = finished.result()
        row.test_accuracy = float(row.output["test_accuracy"])
        row.train_seconds = float(row.output["train_seconds"])
    except Failed as e:
        row.problem = f"failed: {e}"
        return row
    except (KeyError, TypeError, ValueError) as e:
        row.problem = f"failed: its result has no usable {e}"
        return row
    row.whole_seconds, row.peak_mb = finished.seconds, finished.peak_mb
    row.curve = row.output.get("curve") or [[row.train_seconds, row.test_accuracy]]
    progress(f"  {row.test_accuracy:.2%} in {row.train_seconds:.2f} s of training, {row.whole_seconds:.2f} s in all")
    return row


def add_curve(row: Row, command: list[str], replaces: bool = False) -> None:
    """Put the time-to-accuracy points that command prints before row.curve (or in its place); note a failure.

    The points are in order of training effort (epochs, iterations): the command's are smaller budgets than the
    row's own run. They are never sorted by seconds, which other work on the machine can put out of order.
    """
    progress(f"  curve of {row.method}")
    try:
        output = run(command).result()
        points = output["curve"]
    except (Failed, KeyError) as e:
        row.notes.append(f"its time-to-accuracy curve could not be measured: {e}")
        return
    row.curve = points if replaces else points + row.curve
    if output.get("replay_matches_run") is False:
        row.notes.append("the replay that scores each epoch did not end at the run's test accuracy; its curve is "
                         "approximate")


def check_targets(rows: dict[str, Row], scratch: Path) -> list[Target]:
    """Return the Speed issue's targets with what was measured for each."""
    default, card, sklearn = rows["softmax"], rows["card"], rows["sklearn"]
    targets = [
        target("`softmax train` (defaults) test accuracy", ">= 92.5%", default.test_accuracy,
               lambda a: a >= 0.925, lambda a: f"{a:.2%}"),
        target("`softmax train` (defaults) training seconds", "<= 0.3 s", default.train_seconds,
               lambda s: s <= 0.3, lambda s: f"{s:.2f} s"),
        target("`softmax train --lr 0.01 --epochs 1000`: test accuracy and whole process", ">= 92.59% and <= 45 s",
               None if card.problem else (card.test_accuracy, card.whole_seconds),
               lambda m: m[0] >= 0.9259 and m[1] <= 45, lambda m: f"{m[0]:.2%} in {m[1]:.1f} s"),
        target("`softmax train` whole process vs `LogisticRegression()` whole process", ">= 40× faster",
               sklearn.ratio, lambda r: r >= 40,
               lambda r: f"{r:.1f}× ({default.whole_seconds:.2f} s vs {sklearn.whole_seconds:.1f} s)"),
        floor_target(),
        threads_target(),
        any_data_target(),
    ]
    deskew, best = rows["deskew"], rows["best"]
    targets += [
        target("`softmax train --preprocess deskew` test accuracy", ">= 94.8%", deskew.test_accuracy,
               lambda a: a >= 0.948, lambda a: f"{a:.2%}"),
        target("`configs/best.toml` test accuracy", ">= 95.0%", best.test_accuracy,
               lambda a: a >= 0.95, lambda a: f"{a:.2%}"),
        target("`--preprocess deskew`, warm cache, whole process vs `softmax train` (defaults)", "<= 1.5×",
               None if deskew.problem or default.problem else deskew.whole_seconds / default.whole_seconds,
               lambda r: r <= 1.5,
               lambda r: f"{r:.2f}× ({deskew.whole_seconds:.2f} s vs {default.whole_seconds:.2f} s)"),
        target(f"deskewing 70,000 images, cold (fastest of {TRAIN_REPEATS} processes)", "<= 2 s",
               deskew_seconds(), lambda s: s <= 2, lambda s: f"{s:.2f} s"),
    ]
    model = default.output.get("model")
    deskew_model = deskew.output.get("model")
    if deskew_model:
        deskew_predict = ["predict", str(write_test_image(scratch / "one.png")), "--model", deskew_model]
        targets.append(target(f"`softmax predict one.png` with a deskewed model (fastest of {PREDICT_REPEATS})",
                              "<= 0.6 s", fastest_seconds(deskew_predict, PREDICT_REPEATS),
                              lambda s: s <= 0.6, lambda s: f"{s:.3f} s"))
    if model:
        targets += serve_targets(model)
    targets.append(teach_target())
    help_arguments = ["--help"]
    predict_arguments = model and ["predict", str(write_test_image(scratch / "one.png")), "--model", model]
    help_seconds = fastest_seconds(help_arguments, HELP_REPEATS)
    predict_seconds = predict_arguments and fastest_seconds(predict_arguments, PREDICT_REPEATS)
    imported = heavy_imports(help_arguments), predict_arguments and heavy_imports(predict_arguments)
    targets += [
        target(f"`softmax --help` whole process (fastest of {HELP_REPEATS})", "<= 0.3 s", help_seconds,
               lambda s: s <= 0.3, lambda s: f"{s:.3f} s"),
        target(f"`softmax predict one.png` whole process (fastest of {PREDICT_REPEATS})", "<= 0.6 s",
               predict_seconds, lambda s: s <= 0.6, lambda s: f"{s:.3f} s"),
        target("`softmax train` (defaults) peak memory, local data", "<= 400 MB", default.peak_mb,
               lambda mb: mb <= 400, lambda mb: f"{mb:.0f} MB"),
        target("`softmax --help` and `softmax predict` import no TensorFlow (`python -X importtime`)",
               "none imported", None if None in imported else imported, lambda found: not any(found),
               lambda found: "; ".join(f"{command}: {', '.join(modules) or 'none'}"
                                       for command, modules in zip(("--help", "predict"), found))),
    ]
    return targets


def floor_target() -> Target:
    """Return the target of an epoch of the default recipe against the floor of its matrix products (bench/floor.py)."""
    progress("an epoch against its matrix products (bench/floor.py)")
    try:
        figures = run([PYTHON, str(HERE / "floor.py"), "--json"]).result()
    except Failed as e:
        progress(f"  failed: {e}")
        figures = None
    return target("one epoch of the default recipe / its two matrix products on one thread (the floor), same run: "
                  "the compiled epoch (every run, one thread), in the form this processor takes, and in the "
                  "form for any processor; the NumPy loop (no C compiler at install)", "<= 1.6×",
                  figures, lambda f: f["ratio_compiled"] <= 1.6,
                  lambda f: f"{f['ratio_compiled']:.2f}× ({f['epoch_compiled'] * 1e3:.0f} ms vs {f['floor'] * 1e3:.0f} ms, "
                            f"{f['instructions']}; rows compressed once a fit in "
                            f"{f['rows'] * 1e3:.0f} ms); any processor "
                            f"{f['ratio_compiled_any']:.2f}×; NumPy loop {f['ratio']:.2f}× ({f['epoch'] * 1e3:.0f} ms: gather and cast "
                            f"{f['gather_and_cast'] * 1e3:.0f}, softmax {f['softmax'] * 1e3:.0f}, update "
                            f"{f['update'] * 1e3:.0f}, overhead {f['overhead'] * 1e3:.0f} ms)")


def threads_target() -> Target:
    """Return the target of the default thread count against one thread, quiet and busy (bench/threads.py)."""
    progress("the default threads against one thread, quiet and beside a busy core (bench/threads.py)")
    try:
        figures = run([PYTHON, str(HERE / "threads.py")]).result()
    except Failed as e:
        progress(f"  failed: {e}")
        figures = None
    cases = ("mnist_quiet", "mnist_busy", "digits_quiet", "digits_busy")
    return target("training seconds, default threads / SOFTMAX_THREADS=1, same run: `softmax train --epochs 30` on "
                  "MNIST and 20 SoftmaxRegression() fits on scikit-learn's digits, quiet and beside a busy core",
                  "<= 1.1× each", figures, lambda f: all(f[case]["ratio"] <= 1.1 for case in cases),
                  lambda f: "; ".join(f"{case.replace('_', ' ')} {f[case]['ratio']:.2f}× "
                                      f"({f[case]['default']:.2f} s vs {f[case]['one_thread']:.2f} s)"
                                      for case in cases))


def any_data_target() -> Target:
    """Return the target of SoftmaxRegression() at its defaults against LogisticRegression(max_iter=1000) on data
    that is not MNIST, quiet and beside a busy core (bench/any_data.py)."""
    progress("SoftmaxRegression() beside LogisticRegression on scikit-learn's data sets (bench/any_data.py)")
    try:
        figures = {case: run([PYTHON, str(HERE / "any_data.py"), *flags]).result()["rows"]
                   for case, flags in (("quiet", []), ("busy", ["--busy"]))}
    except Failed as e:
        progress(f"  failed: {e}")
        figures = None

    def slowest(rows):
        return max(rows, key=lambda row: row["softmax_seconds"] / row["logreg_seconds"])

    def passes(f):
        return all(row["softmax"] >= row["logreg"] - 0.015 and row["softmax_seconds"] <= row["logreg_seconds"]
                   and not row["softmax_warnings"] for rows in f.values() for row in rows)

    return target("`SoftmaxRegression()` at its defaults vs `LogisticRegression(max_iter=1000)` on iris, wine, breast "
                  "cancer, digits (and x 1e4), make_classification and the Keras lab's blobs, 30 % held out, best of 3 "
                  "fits, quiet and beside a busy core", "within 1.5 points or better, no warning, no slower (each)",
                  figures, passes,
                  lambda f: "; ".join(f"{case}: slowest {slowest(rows)['data']} "
                                      f"{slowest(rows)['softmax_seconds'] / slowest(rows)['logreg_seconds']:.2f}×, "
                                      f"least accurate {min(row['softmax'] - row['logreg'] for row in rows):+.1%}"
                                      for case, rows in f.items()))


def teach_target() -> Target:
    """Return the target of the drawing page's lesson: POST /api/learn of 500 drawings, quiet and busy (bench/teach.py)."""
    progress("the drawing page's Teach the model: POST /api/learn of 50 and 500 drawings (bench/teach.py)")
    try:
        figures = run([PYTHON, str(HERE / "teach.py")]).result()["seconds"]
    except Failed as e:
        progress(f"  failed: {e}")
        figures = None
    return target("`POST /api/learn` (the page's Teach the model) of 500 drawings to a deskewed MNIST model, median "
                  "of 3, quiet and beside a busy core", "<= 1 s each", figures,
                  lambda f: all(f[case]["lesson_500"] <= 1 for case in ("quiet", "busy")),
                  lambda f: "; ".join(f"{case} {f[case]['lesson_500']:.2f} s (50 drawings {f[case]['lesson_50']:.2f} s, "
                                      f"the first lesson, which reads the data, {f[case]['first_50']:.2f} s)"
                                      for case in ("quiet", "busy")))


def serve_targets(model: str) -> list[Target]:
    """Return softmax serve's targets, from bench/serve.py: start-up, one prediction, 200 at once."""
    progress("softmax serve: start-up, 200 predictions one by one, 200 at once")
    try:
        measured = run([PYTHON, str(HERE / "serve.py"), "--model", model]).result()
    except Failed as e:
        progress(f"  failed: {e}")
        measured = {}
    return [
        target("`softmax serve` start-up until it answers (median of 3)", "<= 2 s",
               measured.get("startup_seconds_median"), lambda s: s <= 2, lambda s: f"{s:.2f} s"),
        target("one `POST /api/predict`, on the server (median of 200)", "<= 20 ms",
               measured.get("predict_ms_median"), lambda ms: ms <= 20, lambda ms: f"{ms:.1f} ms"),
        target("200 concurrent predictions", "all correct, none refused",
               (measured["concurrent_ok"], measured["concurrent_correct"]) if measured else None,
               lambda counts: counts == (200, 200), lambda counts: f"{counts[0]} answered, {counts[1]} correct"),
    ]


def deskew_seconds() -> float | None:
    """Return the least seconds bench/deskew.py's child takes to load MNIST and deskew all 70,000 images, cold."""
    progress(f"deskewing 70,000 images: {TRAIN_REPEATS} cold processes")
    try:
        return min(run([PYTHON, str(HERE / "deskew.py"), "--time-once", "deskew"]).result()["seconds"]
                   for _ in range(TRAIN_REPEATS))
    except (Failed, KeyError) as e:
        progress(f"  failed: {e}")
        return None


def target(goal, wanted, value, passes, shown) -> Target:
    """Return the Target for a measured value (None when it could not be measured), judged by passes."""
    if value is None:
        return Target(goal, wanted, "not measured", None)
    return Target(goal, wanted, shown(value), bool(passes(value)))


def fastest_seconds(arguments: list[str], repeats: int) -> float | None:
    """Return the least whole-process seconds of `softmax ARGUMENTS` in repeats runs, or None when one fails."""
    progress(f"softmax {arguments[0]}: {repeats} runs")
    try:
        return fastest([[SOFTMAX, *arguments]] * repeats).seconds
    except Failed as e:
        progress(f"  failed: {e}")
        return None


def heavy_imports(arguments: list[str]) -> list[str] | None:
    """Return the TensorFlow and Keras modules that `softmax ARGUMENTS` imports, or None when it fails."""
    try:
        finished = run([PYTHON, "-X", "importtime", "-m", "softmax_cli", *arguments])
    except Failed as e:
        progress(f"  the import check of softmax {arguments[0]} failed: {e}")
        return None
    # -X importtime writes one line per module imported: "import time: self | cumulative | name"
    lines = [line for line in finished.stderr.splitlines() if line.startswith("import time:")]
    names = [line.rsplit("|", 1)[-1].strip() for line in lines]
    return sorted({name for name in names if name.split(".")[0] in HEAVY_MODULES})


def write_test_image(path: Path) -> Path:
    """Write the first test image of the data set to path as a PNG and return path."""
    from PIL import Image
    from softmax_cli.data import load_dataset

    Image.fromarray(load_dataset(os.environ["SOFTMAX_DATA"]).x_test[0]).save(path)
    return path


def machine() -> str:
    """Return the processor, the number of cores, and the Python and NumPy versions, in words."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def progress(message: str) -> None:
    """Tell the person running the benchmark what it is doing, on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

"""`softmax train` and `softmax tune`: settings in, the library's run out, a summary printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..config import ADD_WEIGHT, SETTINGS, TrainConfig
from ..errors import EXIT_INTERRUPTED, SoftmaxError
from .options import (ListOf, SettingType, checked, load_data, config_option, data_option, dataset_option, flag_of, json_option,
                      model_option, quiet_option, setting_option, settings_given)
from .progress import Progress, StopRequest
from .render import added_text, format_batch_size, say, tune_table


def setting_options(command):
    """Give a command one option per training setting, in the order of config.SETTINGS."""
    for name in reversed(SETTINGS):
        command = setting_option(name)(command)
    return command


@click.command(short_help="Train on MNIST, report test accuracy, save model.npz.")
@setting_options
@config_option("A TOML file of settings; options given on the command line override it.")
@dataset_option()
@data_option
@model_option("Where to save the trained model.")
@click.option("--resume", "checkpoint_path", type=click.Path(path_type=Path),
              help="Continue an interrupted run from the checkpoint it saved; the result is what the run would "
              "have given.")
@click.option("--history", "history_path", type=click.Path(path_type=Path),
              help="Also write the per-epoch loss and accuracy to this .csv or .json file.")
@click.option("--add", "add_sources", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Also train on your own labelled examples: a folder of class-named subfolders of images "
              "(mydigits/7/a.png) or a Keras-layout .npz (x_train, y_train), framed as predict frames images; "
              "may be given more than once.")
@click.option("--add-weight", type=SettingType(ADD_WEIGHT), default=ADD_WEIGHT.default, show_default=True,
              help=f"{ADD_WEIGHT.meaning} (--add)")
@quiet_option
@json_option
@click.pass_context
def train(ctx, config_file, dataset_name, data, model_path, checkpoint_path, history_path, add_sources, add_weight,
          quiet, as_json, **settings):
    """Train softmax regression, report test accuracy and save the weights.

    The model file is a plain .npz: W (784, 10) and b (10,) apply to pixels / 255, so
    argmax(x / 255 @ W + b) is the prediction (for a model trained with --preprocess deskew,
    after deskewing the image). Ctrl-C (or SIGTERM) stops after the current epoch and saves a
    checkpoint next to the model for --resume; an existing model file is left untouched.
    Exit codes: 0 done, 1 error (e.g. training diverged), 2 wrong options, 130 interrupted.
    """
    from ..run import check_destinations, fitted_to_the_table, read_checkpoint, train_model

    reads = [path for path in (data, config_file) if path is not None]
    resumed = None
    if checkpoint_path is not None:
        resumed = read_checkpoint(checkpoint_path)
        check_same_settings(resumed.config, settings_given(ctx, settings))
        dataset_name, config = resumed.dataset, resumed.config
    else:
        config = TrainConfig(**settings)
    check_destinations(model_path, history_path, reads, checkpoint_path)  # now, not after a minute of training
    dataset = load_data(ctx, data, dataset_name)
    if dataset.is_table and config.preprocess != "none":
        raise SoftmaxError(f"--preprocess {config.preprocess} straightens images, but {dataset.source} is a table of "
                           "features: leave it out (--preprocess none)")
    if resumed is None:
        config = fitted_to_the_table(config, dataset, settings_given(ctx, settings))
    added = read_added(add_sources, dataset) if add_sources else None
    if not quiet:
        say_if_the_numpy_loop_runs()
    done = resumed.trainer.epoch if resumed else 0
    with Progress(config.epochs, done, disable=quiet or as_json) as progress, StopRequest() as stop:
        run = train_model(dataset, config, model_path, resumed=resumed, history_path=history_path,
                          reads=[*reads, dataset.source, *add_sources], on_epoch=progress, should_stop=stop,
                          added=added, add_weight=add_weight)
    if run.interrupted:
        say(
            f"softmax: interrupted after epoch {len(run.fit.history)} of {config.epochs}; {model_path} was not "
            f"written. To continue, run the same command with --resume {run.checkpoint_path}", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps(run.summary(), allow_nan=False))
    elif not quiet:
        say(train_summary(run))
    if run.warning and not as_json:  # (--json carries it as "warning")
        say(f"softmax: warning: {run.warning}", err=True)


def read_added(sources, dataset):
    """Return the examples of --add, framed for a model of dataset; each image left out is said on stderr."""
    from ..data.examples import read_examples

    if dataset.is_table:
        raise SoftmaxError(f"--add adds images, but {dataset.source} is a table of features: leave it out")
    added = read_examples(sources, dataset.class_names, dataset.image_shape, dataset.image_convention())
    for line in added.skipped:
        say(f"softmax: left out: {line}", err=True)
    return added


def say_if_the_numpy_loop_runs() -> None:
    """Say on stderr, once a run, that training takes the NumPy loop because the compiled epoch was not built."""
    from ..train import training_loop

    compiled, loop = training_loop()
    if not compiled and not os.environ.get("SOFTMAX_NUMPY_LOOP"):
        click.echo(f"softmax: note: training takes {loop}", err=True)


def train_summary(run) -> str:
    """Return the lines `softmax train` ends with: test accuracy, how training ended, where the model went."""
    fit = run.fit
    line = f"test accuracy {run.test_accuracy:.2%} after {fit.epochs_run} epochs in {fit.train_seconds:.2f} s"
    if fit.best_epoch is not None:
        kept = fit.history[fit.best_epoch - 1]
        how = "stopped early and kept" if fit.stopped_early else "kept"
        line += (f"; {how} epoch {fit.best_epoch}'s weights, the best by validation loss "
                 f"({kept['val_loss']:.4f}, validation accuracy {kept['val_accuracy']:.2%})")
    elif fit.history and "val_loss" in fit.history[-1]:
        last = fit.history[-1]
        line += f" (validation loss {last['val_loss']:.4f}, validation accuracy {last['val_accuracy']:.2%})"
    if run.added is not None:
        line += f"; with {added_text(run.added)}"
    return f"{line}; model saved to {run.model_path}"


def check_same_settings(saved: TrainConfig, given: dict) -> None:
    """Raise SoftmaxError if a setting asked for differs from the checkpoint's: the result would be neither run's."""
    different = [f"{flag_of(name)} {getattr(saved, name)}" for name in sorted(given)
                 if given[name] != getattr(saved, name)]
    if different:
        raise SoftmaxError(f"the checkpoint was made with {', '.join(different)}: resume with the settings it was "
                           "made with (or leave them out)")


@click.command(short_help="Choose lr, batch size and L2 on a validation split.")
@click.option("--lr", "lr_values", type=ListOf("lr"), default="0.1,0.3,1", show_default=True,
              help="Learning rates to try.")
@click.option("--batch-size", "batch_sizes", type=ListOf("batch_size"), default="50,100,200", show_default=True,
              help="Batch sizes to try; 'full' is the whole training set in every step.")
@click.option("--l2", "l2_values", type=ListOf("l2"), default="0,1e-4,1e-3", show_default=True,
              help="L2 penalties to try.")
@click.option("--val-split", "holdout", type=checked("val_split", float, low=0, high=1, low_open=True, high_open=True),
              default=1 / 6, show_default="1/6",
              help="The fraction of the training set held out to score each setting on (1/6 of MNIST's is 10,000 "
              "images).")
@setting_option("epochs")
@setting_option("seed", "Random seed for the validation split and the shuffling.")
@setting_option("preprocess")
@config_option("A TOML file of the other settings (momentum, schedule, ...); options given here override it.")
@dataset_option()
@data_option
@click.option("--out", "out_path", type=click.Path(path_type=Path),
              help="Write the best settings to this TOML file, for `softmax train --config FILE`.")
@quiet_option
@json_option
@click.pass_context
def tune(ctx, lr_values, batch_sizes, l2_values, holdout, epochs, seed, preprocess, config_file, dataset_name,
         data, out_path, quiet, as_json):
    """Choose the learning rate, batch size and L2 penalty by grid search on a validation split.

    Every combination of the --lr, --batch-size and --l2 values is trained on the training set minus
    a held-out part (--val-split) and scored on that part. The test set is never used, so the test
    accuracy `softmax train` reports with the chosen settings stays a fair estimate.

    The table ranks the settings by validation loss (the mean cross-entropy on the held-out images),
    lowest first: it moves smoothly with the weights, while accuracy moves in steps of one image and
    often ties. --out writes the best as a config file with every setting; `softmax train --config
    FILE` then trains with it on the whole training set.
    """
    from ..safe_io import check_destination
    from ..tune import is_tune_file, search, write_best_config

    if out_path is not None:  # said now, not after the whole search
        check_destination(out_path, "settings file", reads=[p for p in (data, config_file) if p],
                          is_kind=is_tune_file)
    base = TrainConfig(**{**(ctx.default_map or {}), "epochs": epochs, "seed": seed, "preprocess": preprocess,
                          "val_split": 0.0, "patience": 0})
    dataset = load_data(ctx, data, dataset_name)
    grid_size = len(lr_values) * len(batch_sizes) * len(l2_values)
    # no epoch line is left at the end: the table below names the best trial, where the last line would not
    with Progress(grid_size * base.epochs, disable=quiet or as_json, keep_last=False) as progress:
        result = search(base, dataset.x_train, dataset.y_train, dataset.n_classes, holdout,
                        lr_values, batch_sizes, l2_values, on_epoch=progress)
    if out_path is not None:
        write_best_config(out_path, result, dataset.name)
    best = result.best
    if as_json:
        trials = [{"rank": rank, **trial.to_dict()} for rank, trial in enumerate(result.trials, 1)]
        click.echo(json.dumps({
            "ranked_by": "val_loss", "dataset": dataset.name, "n_train": result.n_train,
            "n_validation": result.n_validation, "seconds": result.seconds, "trials": trials,
            "best": best.config.to_dict(), "best_val_accuracy": best.val_accuracy, "best_val_loss": best.val_loss,
            "out": None if out_path is None else str(out_path),
        }, allow_nan=False))
        return
    if not quiet:
        click.echo(tune_table(result.trials))
        say(f"\n{grid_size} settings in {result.seconds:.1f} s, each trained on {result.n_train:,} images and "
            f"scored on {result.n_validation:,} held out of the {dataset.name} training set.")
    click.echo(
        f"best, by validation loss: lr {best.config.lr:g}, batch size {format_batch_size(best.config.batch_size)}, "
        f"l2 {best.config.l2:g} (validation accuracy {best.val_accuracy:.2%}, loss {best.val_loss:.4f})"
    )
    if out_path is not None:
        say(f"written to {out_path}; train with it:  softmax train --config {out_path}")
    else:
        click.echo("save these settings for `softmax train --config FILE` with --out FILE")

"""The `softmax` command line: the group, and the one place where a problem becomes Click's one-line error.

One module per family of commands (train and tune, evaluate and info, predict, export, serve); the options they
share are in options.py and the text they print in render.py. Nothing here trains, checks a file or knows the
model format: the commands call the library and print what it returns.

Commands follow Click's conventions, so that Click's `CliRunner` sees exactly what a user's shell sees: a problem
is raised (the library's SoftmaxError, or a click.UsageError for a wrong option) and `SoftmaxGroup` turns it into
a `Problem`, Click's own exception, shown as one line; any other exit code goes through `ctx.exit(code)`.
Importing this package changes nothing in the process: Ctrl-C during start-up is the entry point's business
(softmax_cli/__main__.py).
"""

import contextlib

import click

from .. import __version__
from ..errors import EXIT_INTERRUPTED, SoftmaxError
from . import evaluate, export, predict, serve, train
from .options import flag_of
from .render import error_line


class Problem(click.ClickException):
    """A problem the user can fix, shown by Click as the one line `softmax: error: ...` on stderr."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(error_line(self.message), file=file, err=file is None)


class Interrupted(click.ClickException):
    """Ctrl-C (or a second one during training): `softmax: interrupted`, exit code 130."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self):
        super().__init__("interrupted")

    def show(self, file=None) -> None:
        click.echo("softmax: interrupted", file=file, err=file is None)


@contextlib.contextmanager
def one_line_errors():
    """Turn whatever a command raises for the user to fix into a Problem (a ClickException) with its exit code."""
    try:
        yield
    except (Problem, Interrupted):
        raise
    except SoftmaxError as e:  # the library names a setting; the command line names its flag
        raise Problem(e.in_terms_of(flag_of), e.exit_code) from None
    except click.UsageError as e:  # Click's own (No such command, Missing argument) and the options' checks
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        raise Problem(e.format_message() + hint, e.exit_code) from None
    except click.ClickException as e:
        raise Problem(e.format_message(), e.exit_code) from None
    except (KeyboardInterrupt, click.Abort):
        raise Interrupted() from None


class SoftmaxGroup(click.Group):
    """Click's group, with every problem of parsing or running a command shown as one line (one_line_errors)."""

    def make_context(self, info_name, args, parent=None, **extra):
        with one_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with one_line_errors():
            return super().invoke(ctx)


@click.group(cls=SoftmaxGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="softmax")
@click.pass_context
def cli(ctx):
    """Softmax regression on MNIST, written from scratch in NumPy.

    \b
      softmax train                 train on MNIST and save model.npz
      softmax evaluate              accuracy and a full report of a saved model
      softmax predict digit.png     the digit in your own image, with its probability
      softmax serve --open          draw a digit in the browser and watch the probabilities
      softmax info                  what model.npz holds: data set, settings, how training went
      softmax tune                  choose lr, batch size and L2 on a validation split
      softmax export m.onnx         the model as an ONNX (or Keras) file, to serve without softmax-cli
    """
    if ctx.invoked_subcommand is None:  # `softmax` alone: the help, as help
        click.echo(ctx.get_help())


for command in (train.train, train.tune, evaluate.evaluate, evaluate.info, predict.predict, export.export,
                serve.serve):
    cli.add_command(command)


def main(argv=None) -> None:
    """Run `softmax` with the arguments argv (default: the process's) as Click runs a program: it ends in
    sys.exit with the command's exit code, and a problem is one line on stderr, never a traceback."""
    cli.main(args=argv, prog_name="softmax")

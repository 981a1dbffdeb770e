"""The `softmax` command line: the group, and `main`, which turns every problem into one line on stderr.

One module per family of commands (train and tune, evaluate and info, predict, export, serve); the options they
share are in options.py and the text they print in render.py. Nothing here trains, checks a file or knows the
model format: the commands call the library and print what it returns.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("softmax: interrupted\n")
    os._exit(130)


# Until main() runs, Ctrl-C (even while Python imports Click and NumPy) exits 130 without a traceback.
signal.signal(signal.SIGINT, _interrupted_while_starting)

import click  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, SoftmaxError  # noqa: E402
from . import evaluate, export, predict, serve, train  # noqa: E402
from .options import flag_of  # noqa: E402


@click.group(invoke_without_command=True,
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
    """Run the CLI: user mistakes end in one line on stderr and a non-zero exit, never a traceback."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = cli.main(args=argv, prog_name="softmax", standalone_mode=False)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        click.echo(f"softmax: error: {e.format_message()}{hint}", err=True)
        code = EXIT_USAGE
    except click.ClickException as e:
        click.echo(f"softmax: error: {e.format_message()}", err=True)
        code = e.exit_code
    except SoftmaxError as e:
        click.echo(f"softmax: error: {e.in_terms_of(flag_of)}", err=True)
        code = e.exit_code
    except (KeyboardInterrupt, click.Abort):
        click.echo("softmax: interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)

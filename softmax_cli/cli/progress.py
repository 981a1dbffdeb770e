"""Progress on stderr while training: a tqdm bar in a terminal, one plain line per epoch anywhere else.

The library reports each epoch through one hook (`on_epoch(stats)`); this is the CLI's filling of it. A bar's
`\\r` frames would litter a log file, so when stderr is not a terminal each epoch is one line instead, as
Keras' `fit` writes them. In a terminal the bar is erased at the end and a one-line record of the last epoch
stays.
"""

from __future__ import annotations

import signal
import sys

import click

from .render import EPOCH_STATS, format_epoch


class Progress:
    """Called with each epoch's stats; shows them on stderr unless disabled. Use as a context manager."""

    def __init__(self, total: int, done: int = 0, disable: bool = False, unit: str = "epoch", keep_last: bool = True):
        self.total, self.done, self.disable, self.unit, self.keep_last = total, done, disable, unit, keep_last
        self.terminal = sys.stderr.isatty()
        self.bar = None
        self.last_stats: dict | None = None
        self.shown = done  # the number of epochs whose line was printed last

    def __enter__(self):
        if not self.disable and self.terminal:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, unit=self.unit, file=sys.stderr, leave=False)
        return self

    def __call__(self, stats: dict) -> None:
        self.done += 1
        self.last_stats = stats
        if self.disable:
            return
        if self.bar is not None:
            shown = {label: f"{stats[key]:.4f}" for key, (label, _) in EPOCH_STATS.items() if key in stats}
            if "trial" in stats:
                self.bar.set_description(f"trial {stats['trial']}/{stats['trials']}", refresh=False)
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update()
        else:
            self._line()

    def _line(self) -> None:
        self.shown = self.done
        counted = "" if "trial" in self.last_stats else f"{self.unit} {self.done}/{self.total}: "  # a trial counts
        click.echo(counted + format_epoch(self.last_stats), err=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        # the last epoch's figures stay on record, in a terminal (the bar is erased) and in a log alike
        if self.keep_last and not self.disable and self.last_stats is not None and self.shown != self.done:
            self._line()


class StopRequest:
    """While active, Ctrl-C and SIGTERM ask training to stop after the current epoch; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

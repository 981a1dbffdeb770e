"""The one exception type users see, and the exit codes the CLI turns it into.

A library message that concerns a setting names it as "{setting}" and passes setting="lr": str(error) reads
"lr" (what a Python user passes), and the command line shows its flag, "--lr", instead (see `in_terms_of`).
"""

EXIT_ERROR = 1          # a user mistake or bad input: one line on stderr says what to do
EXIT_USAGE = 2          # Click's own code for a bad option or argument
EXIT_SOME_FAILED = 3    # predict: some inputs were predicted, others could not be read
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM during training (128 + SIGINT, the shell convention)


class SoftmaxError(Exception):
    """A problem the user can fix; its message is one line saying what was wrong and what to do."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, setting: str | None = None,
                 mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.setting = setting
        self.mentions = mentions  # other settings the message names, each written {name} in it

    def in_terms_of(self, name_of) -> str:
        """Return the message with the setting it concerns called name_of(setting), e.g. its command-line flag, and
        so each other setting it mentions."""
        message = self.message
        for name in self.mentions:
            message = message.replace(f"{{{name}}}", name_of(name))
        return message if self.setting is None else message.replace("{setting}", name_of(self.setting))

    def __str__(self) -> str:
        return self.in_terms_of(str)


class TrainingDiverged(SoftmaxError):
    """Training blew up with these settings (a learning rate too large): other settings may still train, so a
    search (tune) notes it and goes on, where any other SoftmaxError stops it."""


def one_line(reason, limit: int | None = None) -> str:
    """Return an error's message (or any text) on one line, cut to limit characters; an empty one names its type."""
    text = " ".join(str(reason).split()) or (type(reason).__name__ if isinstance(reason, BaseException) else "")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def shown(value, limit: int = 40) -> str:
    """Return a value as a message quotes it (its repr), cut short so that a huge value keeps the message on one
    line."""
    try:
        text = repr(value)
    except ValueError:  # a whole number of more than 4,300 digits: Python will not write it out
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text) -> str:
    """Return text with every character a terminal would act on (newline, escape, bidi controls, ...) written as
    its escape, as repr writes it (\\n, \\x1b, \\u202e): a file name in a message can neither break it into lines
    nor send the terminal commands."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))

"""The one exception type users see, and the exit codes the CLI turns it into."""

EXIT_ERROR = 1          # a user mistake or bad input: one line on stderr says what to do
EXIT_USAGE = 2          # Click's own code for a bad option or argument
EXIT_SOME_FAILED = 3    # predict: some inputs were predicted, others could not be read
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM during training (128 + SIGINT, the shell convention)


class SoftmaxError(Exception):
    """A problem the user can fix; its message is one line saying what was wrong and what to do."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code

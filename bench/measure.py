"""Running one command as a child process: its wall-clock seconds, peak memory and the JSON line it prints."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 900  # seconds; only a guard against a hung child, far above the slowest competitor


class Failed(Exception):
    """A command failed or printed no result; the message is one line saying how."""


@dataclass
class Run:
    """A finished child process: wall-clock seconds from start to exit, its peak memory and its output."""

    seconds: float
    peak_mb: float
    stdout: str
    stderr: str

    def result(self) -> dict:
        """Return the JSON object on the last line of the child's output."""
        lines = self.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise Failed(f"printed no JSON result: {last_line(self.stdout) or '(nothing)'}") from None


def run(command: list[str]) -> Run:
    """Return the finished run of command in the repository folder; raise Failed unless it exits with 0."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=REPO)
        guard = threading.Timer(TIMEOUT, child.kill)
        guard.daemon = True  # so that Ctrl-C ends the benchmark at once instead of waiting for the timer
        guard.start()
        try:
            # os.wait4, not child.wait(): only it returns the child's own resource usage, its peak memory
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            guard.cancel()
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        peak_mb = usage.ru_maxrss * 1024 / 1e6  # Linux counts ru_maxrss in KiB
        finished = Run(seconds, peak_mb, stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace"))
    if child.returncode != 0:
        how = f"killed after {TIMEOUT} s" if seconds >= TIMEOUT else f"exit code {child.returncode}"
        raise Failed(f"{how}: {last_line(finished.stderr) or '(no message)'}")
    return finished


def fastest(commands: list[list[str]]) -> Run:
    """Return the run with the least wall-clock seconds among one run of each command."""
    return min((run(command) for command in commands), key=lambda finished: finished.seconds)


def last_line(text: str, limit: int = 160) -> str:
    """Return the last non-blank line of text, cut to limit characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""

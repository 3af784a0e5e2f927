"""What every command shares: the stderr console and the one place errors become exit codes."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TypeVar

from rich.console import Console

from ..errors import AfterimageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class RunModeFlag(StrEnum):
    """--mode: calls online as they come, or in rounds through the providers' batch APIs."""

    online = "online"
    batch = "batch"


class ExecutorFlag(StrEnum):
    """--executor: items made in this process, or by Ray workers with this process writing the rows."""

    local = "local"
    ray = "ray"


def _quiet_broken_pipe() -> None:
    """After the reader of stdout went away, stop without noise (stdout points at /dev/null)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler stopping us), handled like Ctrl-C: flush, clean up, exit 143."""


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM unwinds the run as Ctrl-C does instead of killing it mid-write."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. embedded): keep the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_error(message: str) -> None:
    """Print `error: message` on stderr, each line of a multi-line message indented under it."""
    from rich.text import Text

    first, *rest = str(message).splitlines() or [""]
    # The message is the user's or a server's text (paths, model names, JSON): never parsed as markup,
    # where "[old]" would vanish and "[/]" would crash the error handler itself.
    stderr.print(Text.assemble(("error:", "bold red"), " ", first), highlight=False)
    for line in rest:
        stderr.print(f"  {line}", markup=False, highlight=False)


RESUMABLE = "interrupted; everything written so far is kept (re-run the same command to resume)"


def run_command(fn: Callable[[], R], *, debug: bool = False, on_interrupt: str = "interrupted") -> R:
    """Run a command body; map afterimage errors to exit codes, Ctrl-C to 130, no traceback unless debug.

    `on_interrupt` is what Ctrl-C leaves behind, in the command's own terms.
    """
    debug = debug or bool(os.environ.get("AFTERIMAGE_DEBUG"))
    try:
        return fn()
    except AfterimageError as exc:
        if debug:
            traceback.print_exc()
        report_error(str(exc))
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt as interrupt:
        stderr.print(on_interrupt)
        code = EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
        raise SystemExit(code) from None
    except BrokenPipeError:
        _quiet_broken_pipe()
        raise SystemExit(EXIT_OK) from None
    except OSError as exc:  # a path that cannot be read or written: name it, no traceback
        if debug:
            traceback.print_exc()
        where = exc.filename or "a file"
        report_error(f"{where}: {exc.strerror or exc}")
        raise SystemExit(EXIT_FAILED) from None
    except SystemExit:
        raise

    except Exception as exc:  # the last line of defence: a message, not a traceback
        if debug:
            traceback.print_exc()
        report_error(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)")
        raise SystemExit(EXIT_FAILED) from None


@contextmanager
def open_output(path: str) -> Iterator[Any]:
    """A binary writer for a path, or stdout for '-'."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        with open(path, "wb") as fh:
            yield fh

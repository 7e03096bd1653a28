"""How every command line of the package ends: a user's mistake is one line on stderr and a non-zero exit.

    if __name__ == "__main__":
        raise SystemExit(run_cli(main))

``run_cli(main)`` calls ``main(argv)`` and turns what can go wrong into an exit status:

- a user error (``ValueError``, ``FileNotFoundError`` and the other ``USER_ERRORS``: a bad value, a missing
  or unreadable file, an unwritable folder, no network) → ``error: <message>`` on stderr, exit 2 (1 for a run
  that failed while training, ``RunFailed``);
- Ctrl-C (SIGINT) → ``interrupted (Ctrl-C): ...`` on stderr, exit 130 (finished result files stay; a rerun
  resumes);
- a closed pipe (``... --dry-run | head``) → quiet, exit 141 as for any tool killed by SIGPIPE;
- anything else is a bug: its traceback is printed, as Python does.

``--debug`` anywhere on the command line (or ``DCFT_EDU_DEBUG=1``) shows the traceback of a user error too; it
is taken off the argument list before ``main`` parses it.

Used by: every ``python -m dcft_edu.experiments.*`` command and ``python -m dcft_edu.figures``;
tested in ``tests/test_validation_engine.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

DEBUG_ENV = "DCFT_EDU_DEBUG"
EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_SIGINT = 130
EXIT_SIGPIPE = 141


class UserError(ValueError):
    """A mistake the user can fix; its message says what, where and how (a ValueError, so APIs may catch it)."""


class RunFailed(RuntimeError):
    """A run (or several) failed while working, e.g. diverged; the message says which and what to do. Exit 1."""


#: exceptions that are the user's to fix, not bugs: one line, no traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # a bad value (UnicodeDecodeError and json.JSONDecodeError are ValueErrors)
    FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
    ConnectionError, TimeoutError,
    ImportError,  # an optional dependency missing: the message names the extra to install
)


def debug_wanted(argv: Optional[Sequence[str]] = None) -> bool:
    return "--debug" in (sys.argv[1:] if argv is None else argv) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return " ".join(text.split("\n")[0].split()) + (" (more with --debug)" if "\n" in text.strip() else "")


def run_cli(main: Callable[[Optional[list[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)`` (argv default: ``sys.argv[1:]``) as a command line; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_wanted(args)
    args = [a for a in args if a != "--debug"]
    try:
        code = main(args)
        sys.stdout.flush()
        return int(code or 0)
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): stopped; every result already written is kept, and rerunning the same "
              "command resumes", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:  # `... | head` closed the pipe: no more output is wanted
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
        except OSError:
            pass
        return EXIT_SIGPIPE
    except RunFailed as e:  # its message may list several runs: all of it
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR



def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``low`` (``--steps 0`` would time nothing and still print a result)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: give an integer >= {low}")
        return value

    return parse


def device_arg(text: str) -> str:
    """argparse type: a device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``), refused up front."""
    from .validate import check_device

    try:
        check_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text

"""How entry points end: bad input as one line (exit 2), a failure at run time as one line
(exit 1), Ctrl-C and a scheduler's SIGTERM as an interrupt (exit 130) with the run marked
KILLED. Used by the command lines and the
distributed search's worker processes alike."""

from __future__ import annotations

import contextlib
import signal
import sys

from catdog import CatdogError, RunFailure

FAILED, USAGE, INTERRUPTED = 1, 2, 130


def fail(prog: str, exc: Exception) -> None:
    """One line, and the exit code: 1 for a failure at run time, 2 for bad input."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    raise SystemExit(FAILED if isinstance(exc, RunFailure) else USAGE)


def _terminate(signum, frame):
    # Schedulers stop jobs with SIGTERM: end the run as Ctrl-C does (KILLED, resumable)
    # instead of dying with the run left RUNNING.
    raise KeyboardInterrupt


def guarded(prog: str, work, interrupt_hint: str = ""):
    """WORK(), with bad input, Ctrl-C and SIGTERM reported in one line instead of a
    traceback; the SIGTERM handler that was there before is put back afterwards."""
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (some launchers): they handle signals
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return work()
    except CatdogError as exc:
        fail(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the run is marked KILLED in MLflow.{interrupt_hint}", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

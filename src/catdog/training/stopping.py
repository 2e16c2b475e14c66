"""Ctrl-C and SIGTERM during fit(): the stop waits for the end of the current step.

A KeyboardInterrupt raised by a signal handler lands wherever the main thread happens to
be, TensorFlow's own Python included; one that landed while Keras was replacing an
epoch's dataset iterator aborted the process with a corrupted heap about one time in ten
(the run left RUNNING). Raised from a Keras callback between steps, it unwinds fit()
cleanly, and a step on these machines takes well under a second. A second signal while
the first waits is taken at once."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import keras

# Ctrl-C, and SIGTERM as schedulers send it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopBetweenSteps(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the first step boundary after a stop signal."""

    def __init__(self):
        super().__init__()
        self.signals = 0

    def request(self, signum, frame):
        self.signals += 1
        if self.signals > 1:
            raise KeyboardInterrupt

    def check(self, *args, **kwargs):
        if self.signals:
            raise KeyboardInterrupt

    on_epoch_begin = on_train_batch_end = on_test_batch_end = on_epoch_end = check


@contextmanager
def between_steps():
    """Inside: stop signals wait for a step boundary. Yields the callback fit() must be
    given, or None off the main thread (where signals cannot be handled)."""
    callback = StopBetweenSteps()
    try:
        previous = {s: signal.signal(s, callback.request) for s in STOP_SIGNALS}
    except ValueError:
        yield None
        return
    try:
        yield callback
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    callback.check()  # a signal after the last step still stops the run

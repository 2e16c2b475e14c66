"""Stop signals wait for a safe point; real signals sent to this process."""

import os
import signal

import pytest

from catdog.training import stopping

pytestmark = pytest.mark.unit


def test_a_stop_signal_waits_for_a_safe_point_and_a_second_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    step = stopping.StopBetweenSteps()
    with pytest.raises(KeyboardInterrupt), stopping.deferred():
        with stopping.deferred():  # nested, as fit() inside a search: one record of stops
            os.kill(os.getpid(), signal.SIGTERM)
            step.on_train_batch_begin(0)  # not a boundary the stop waits for
            assert stopping.requested()
            with pytest.raises(KeyboardInterrupt):
                step.on_train_batch_end(0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.getsignal(signal.SIGINT)  # the handler runs between bytecodes
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_after_the_last_safe_point_still_stops_and_the_next_block_starts_clean():
    with pytest.raises(KeyboardInterrupt), stopping.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
    with stopping.deferred():
        stopping.check()

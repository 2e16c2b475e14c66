"""Stop signals during fit() wait for a step boundary; real signals sent to this process."""

import os
import signal

import pytest

from catdog.training.stopping import between_steps

pytestmark = pytest.mark.unit


def test_a_stop_signal_waits_for_the_next_step_and_a_second_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), between_steps() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        stop.on_train_batch_begin(0)  # not a boundary the stop waits for
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.getsignal(signal.SIGINT)  # the handler runs between bytecodes
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_after_the_last_step_still_stops():
    with pytest.raises(KeyboardInterrupt), between_steps():
        os.kill(os.getpid(), signal.SIGTERM)

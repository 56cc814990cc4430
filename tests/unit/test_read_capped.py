"""The transports' shared reader: a silent command ends at the idle time-out, a talking one only at the deadline."""

import time

from checks.transport.base import read_capped


def test_silence_ends_at_the_idle_time_out():
    def silent(wait: float) -> None:
        time.sleep(wait)
        return None

    started = time.monotonic()
    out = read_capped(silent, timeout=30, max_bytes=1024, idle_timeout=0.5)
    assert out.idle and not out.timed_out and out.data == b""
    assert time.monotonic() - started < 5


def test_output_keeps_the_idle_clock_from_running_out_and_the_deadline_still_holds():
    def chatty(wait: float) -> bytes:
        time.sleep(min(wait, 0.1))
        return b"x"

    started = time.monotonic()
    out = read_capped(chatty, timeout=1.0, max_bytes=1 << 20, idle_timeout=0.5)
    assert out.timed_out and not out.idle and len(out.data) >= 5
    assert 0.9 < time.monotonic() - started < 5


def test_without_an_idle_time_out_only_the_deadline_ends_silence():
    out = read_capped(lambda wait: time.sleep(wait), timeout=0.5, max_bytes=10)
    assert out.timed_out and not out.idle

"""The transports' shared reader: a silent command ends at the idle time-out, a talking one only at the deadline."""

import time

import paramiko

from checks.transport.base import read_capped
from checks.transport.ssh import channel_read


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


class _LateChannel(paramiko.Channel):
    """A real paramiko channel whose first recv times out just as the command's last output, its EOF and the
    channel's close arrive: what paramiko's BufferedPipe does when the waiting thread wakes after its time-out."""

    def __init__(self) -> None:
        super().__init__(1)
        self.settimeout(0.01)
        self.first = True

    def recv(self, nbytes):
        if self.first:
            self.first = False
            self.in_buffer.feed(b"@@END done 0@@\n")
            self.in_buffer.close()
            self.closed = True
            raise TimeoutError
        return super().recv(nbytes)


class _Active:
    def is_active(self) -> bool:
        return True


def test_output_that_arrives_with_the_close_is_read_not_lost():
    channel = _LateChannel()
    chunks = []
    while (data := channel_read(channel, _Active())) != b"":
        if data is not None:
            chunks.append(data)
    assert b"".join(chunks) == b"@@END done 0@@\n"


def test_a_quiet_open_channel_reads_as_nothing_yet():
    channel = paramiko.Channel(2)
    channel.settimeout(0.01)
    assert channel_read(channel, _Active()) is None
    channel.in_buffer.feed(b"x")
    assert channel_read(channel, _Active()) == b"x"

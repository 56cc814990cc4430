from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class ConnectFailure(Exception):
    """Reaching or logging into a node failed; `reason` is a stable code (`refused`, `timed out`, `auth rejected`,
    `host key changed`, ...), the message says it for a person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where and how to log in; secrets are in memory only for the duration of one run."""

    address: str
    port: int = 22
    # Further checked addresses of the same node (a name's other answers), tried in order when a TCP connect to
    # the ones before fails (refused, timed out, unreachable); a failure after TCP connected never falls through.
    alternatives: tuple[str, ...] = ()
    user: str = "root"
    # Never in a repr (tracebacks, logs, debuggers): only the secret's absence or presence shows, through `__repr__`.
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)
    # Called with (key_type, fingerprint, base64 key); raises ConnectFailure to refuse the key.
    verify_host_key: Callable[[str, str, str], None] | None = field(default=None, compare=False)


@dataclass
class ProbeRun:
    output: str
    exit_status: int | None
    started: float  # wall-clock (time.time()) when the command was sent
    first_byte: float | None  # when its first output arrived: half of that after `started` is the round trip
    finished: float
    truncated: bool = False
    timed_out: bool = False
    host_key_fingerprint: str = ""
    idle: bool = False  # ended because the command printed nothing for the idle time-out
    address: str = ""  # the address the command ran at (one of the target's, see Target.alternatives)


class Transport(Protocol):
    def run(
        self,
        target: Target,
        *,
        command: str,
        stdin: str,
        timeout: float,
        max_bytes: int,
        idle_timeout: float | None = None,
    ) -> ProbeRun: ...


@dataclass
class CappedOutput:
    data: bytes
    first_byte: float | None
    truncated: bool
    timed_out: bool
    idle: bool = False


def read_capped(
    read: Callable[[float], bytes | None], *, timeout: float, max_bytes: int, idle_timeout: float | None = None
) -> CappedOutput:
    """Read a command's output until EOF, the deadline, the byte cap, or `idle_timeout` seconds without a byte,
    whichever comes first (a silent command ends early; the deadline stays the outer bound).

    `read(wait)` returns bytes, b"" at end of output, or None when nothing arrived within `wait` seconds.
    """
    chunks: list[bytes] = []
    size, first_byte = 0, None
    deadline = time.monotonic() + timeout
    last_byte = time.monotonic()
    while True:
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return CappedOutput(b"".join(chunks), first_byte, False, True)
        if idle_timeout is not None and now - last_byte >= idle_timeout:
            return CappedOutput(b"".join(chunks), first_byte, False, False, idle=True)
        wait = remaining if idle_timeout is None else min(remaining, idle_timeout - (now - last_byte))
        data = read(max(0.01, min(wait, 1.0)))
        if data is None:
            continue
        last_byte = time.monotonic()
        if not data:
            return CappedOutput(b"".join(chunks), first_byte, False, False)
        first_byte = first_byte or time.time()
        if size + len(data) > max_bytes:
            chunks.append(data[: max_bytes - size])
            return CappedOutput(b"".join(chunks), first_byte, True, False)
        chunks.append(data)
        size += len(data)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class ConnectFailure(Exception):
    """Reaching or logging into a node failed; `reason` is a stable code, the message says it for a person."""

    REASONS = (
        "refused",
        "timed out",
        "dns",
        "unreachable",
        "auth rejected",
        "host key changed",
        "protocol",
        "credential",
        "closed",
    )

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where and how to log in; secrets are in memory only for the duration of one run."""

    address: str
    port: int = 22
    user: str = "root"
    password: str = ""
    private_key: str = ""
    passphrase: str = ""
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


class Transport(Protocol):
    def run(self, target: Target, *, command: str, stdin: str, timeout: float, max_bytes: int) -> ProbeRun: ...

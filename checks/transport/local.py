"""Run commands on the machine Preflight itself runs on (the demo's server node), with the same caps as SSH."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time

from .base import ProbeRun, Target, read_capped


class LocalTransport:
    def connect(self, target: Target) -> LocalSession:
        return LocalSession()

    def run(
        self,
        target: Target,
        *,
        command: str,
        stdin: str,
        timeout: float,
        max_bytes: int,
        idle_timeout: float | None = None,
    ) -> ProbeRun:
        return LocalSession().run(
            command=command, stdin=stdin, timeout=timeout, max_bytes=max_bytes, idle_timeout=idle_timeout
        )


class LocalSession:
    host_key_fingerprint = ""

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        pass

    def start(self, command: str) -> LocalProcess:
        return LocalProcess(command)

    def run(
        self, *, command: str, stdin: str, timeout: float, max_bytes: int, idle_timeout: float | None = None
    ) -> ProbeRun:
        started = time.time()
        process = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdin and process.stdout
        try:
            process.stdin.write(stdin.encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            out = read_capped(
                lambda wait: os.read(fd, 65536) if selector.select(timeout=wait) else None,
                timeout=timeout,
                max_bytes=max_bytes,
                idle_timeout=idle_timeout,
            )
        truncated, timed_out = out.truncated, out.timed_out
        if timed_out or truncated or out.idle:
            _kill(process)
        process.stdout.close()
        try:
            exit_status = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            exit_status = None
        return ProbeRun(
            output=out.data.decode("utf-8", errors="replace"),
            exit_status=None if timed_out or truncated or out.idle else exit_status,
            started=started,
            first_byte=out.first_byte,
            finished=time.time(),
            truncated=truncated,
            timed_out=timed_out,
            idle=out.idle,
        )


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LocalProcess:
    def __init__(self, command: str) -> None:
        self.process = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._buffer = b""

    def readline(self, timeout: float) -> str | None:
        assert self.process.stdout
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    return None
                data = os.read(self.process.stdout.fileno(), 4096)
                if not data:
                    break
                self._buffer += data
        line, sep, rest = self._buffer.partition(b"\n")
        if not sep and not line:
            return None
        self._buffer = rest
        return line.decode("utf-8", errors="replace")

    def shutdown(self) -> None:
        """Close the command's stdin: the signal to stop (see close)."""
        try:
            if self.process.stdin and not self.process.stdin.closed:
                self.process.stdin.close()
        except BrokenPipeError:
            pass

    def close(self) -> None:
        self.shutdown()
        try:
            self.process.wait(timeout=5)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            _kill(self.process)

"""Run the probe on the machine Preflight itself runs on (the demo's server node), with the same caps as SSH."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time

from .base import ProbeRun, Target


class LocalTransport:
    def run(self, target: Target, *, command: str, stdin: str, timeout: float, max_bytes: int) -> ProbeRun:
        started = time.time()
        process = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdin and process.stdout
        process.stdin.write(stdin.encode())
        process.stdin.close()
        chunks: list[bytes] = []
        size, first_byte, truncated, timed_out = 0, None, False, False
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if not selector.select(timeout=min(remaining, 1.0)):
                    continue
                data = os.read(process.stdout.fileno(), 65536)
                if not data:
                    break
                first_byte = first_byte or time.time()
                if size + len(data) > max_bytes:
                    chunks.append(data[: max_bytes - size])
                    truncated = True
                    break
                chunks.append(data)
                size += len(data)
        if timed_out or truncated:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.stdout.close()
        try:
            exit_status = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            exit_status = None
        return ProbeRun(
            output=b"".join(chunks).decode("utf-8", errors="replace"),
            exit_status=None if timed_out or truncated else exit_status,
            started=started,
            first_byte=first_byte,
            finished=time.time(),
            truncated=truncated,
            timed_out=timed_out,
        )

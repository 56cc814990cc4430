"""SSH with paramiko: one connection and one exec per probe, host keys verified by the caller's policy.

paramiko.Transport is driven directly (not SSHClient) so each phase has its own timeout and its own precise failure:
TCP connect, banner, key exchange, host key, authentication, and the command.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import socket
import threading
import time
from dataclasses import replace

import paramiko

from .base import ConnectFailure, ProbeRun, Target, read_capped

_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# Keys already read, by a digest of their text and passphrase (never the secrets themselves): a passphrase-protected
# OpenSSH key costs a bcrypt KDF of ~120 ms of CPU to open, which every node of every audit paid again. Bounded and
# short-lived; a wrong passphrase or a changed key is a different digest, so it is read (and refused) as before.
_KEY_CACHE: dict[bytes, tuple[float, paramiko.PKey]] = {}
_KEY_CACHE_LOCK = threading.Lock()
_KEY_CACHE_SIZE = 64
_KEY_CACHE_SECONDS = 600.0


def load_private_key(text: str, passphrase: str = "") -> paramiko.PKey:
    digest = hashlib.sha256(b"%d:%s:%s" % (len(passphrase), passphrase.encode(), text.encode())).digest()
    now = time.monotonic()
    with _KEY_CACHE_LOCK:
        cached = _KEY_CACHE.get(digest)
        if cached is not None and now - cached[0] < _KEY_CACHE_SECONDS:
            return cached[1]
    key = _read_private_key(text, passphrase)
    with _KEY_CACHE_LOCK:
        if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
            _KEY_CACHE.clear()
        _KEY_CACHE[digest] = (now, key)
    return key


def _read_private_key(text: str, passphrase: str) -> paramiko.PKey:
    last_error: Exception | None = None
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise ConnectFailure("credential", "the private key is encrypted and no passphrase is stored") from None
        except (paramiko.SSHException, ValueError, IndexError) as exc:
            last_error = exc
    raise ConnectFailure("credential", f"the stored private key cannot be read ({last_error})")


class SshTransport:
    def __init__(self, *, connect_timeout: float = 10, auth_timeout: float = 15) -> None:
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout

    def _socket(self, target: Target) -> tuple[socket.socket, str]:
        """A TCP connection to the target's address, or to the first of its alternatives that accepts one."""
        failures: list[ConnectFailure] = []
        for address in (target.address, *target.alternatives):
            try:
                return self._connect_tcp(address, target.port), address
            except ConnectFailure as failure:
                if failure.reason in ("dns", "policy"):
                    raise
                failures.append(failure)
        first = failures[0]
        if len(failures) == 1:
            raise first
        tried = "; ".join(f.message for f in failures[1:])
        raise ConnectFailure(first.reason, f"{first.message} (also tried: {tried})")

    def _connect_tcp(self, address: str, port: int) -> socket.socket:
        try:
            return socket.create_connection((address, port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ConnectFailure("dns", f"cannot resolve {address}: {exc.strerror}") from None
        except ConnectionRefusedError:
            raise ConnectFailure("refused", f"connection to {address}:{port} refused") from None
        except TimeoutError:
            raise ConnectFailure(
                "timed out", f"TCP connect to {address}:{port} timed out after {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                raise ConnectFailure("unreachable", f"{address}: {exc.strerror}") from None
            raise ConnectFailure("unreachable", f"connect to {address}:{port} failed: {exc}") from None

    def _open(self, target: Target) -> tuple[paramiko.Transport, str, Target]:
        sock, address = self._socket(target)
        if address != target.address:  # every message below names the address that answered
            target = replace(target, address=address, alternatives=())
        transport = paramiko.Transport(sock)
        transport.banner_timeout = self.connect_timeout
        transport.handshake_timeout = self.connect_timeout
        transport.auth_timeout = self.auth_timeout
        try:
            began = time.monotonic()
            try:
                transport.start_client(timeout=self.connect_timeout)
            except paramiko.SSHException as exc:
                text = str(exc)
                if "banner" in text.lower():
                    reason = (
                        f"no SSH banner from {target.address}:{target.port} within {self.connect_timeout:g} s ({text})"
                    )
                else:
                    reason = f"SSH handshake with {target.address}:{target.port} failed: {text or type(exc).__name__}"
                raise ConnectFailure("protocol", reason) from None
            except (EOFError, OSError) as exc:
                if time.monotonic() - began >= self.connect_timeout - 0.5:
                    raise ConnectFailure(
                        "timed out",
                        f"the SSH handshake with {target.address}:{target.port} did not complete within "
                        f"{self.connect_timeout:g} s (the server sent a banner, then nothing)",
                    ) from None
                raise ConnectFailure(
                    "closed", f"{target.address}:{target.port} closed the connection during the handshake ({exc!r})"
                ) from None
            except Exception as exc:  # noqa: BLE001 - whatever a broken peer makes paramiko raise is a failure to connect
                raise ConnectFailure(
                    "protocol", f"SSH handshake with {target.address}:{target.port} failed: {exc!r}"
                ) from None
            try:
                # start_client() returns quietly when its time-out passes mid-handshake: no key means no handshake.
                key = transport.get_remote_server_key()
            except paramiko.SSHException:
                if not transport.remote_version:
                    raise ConnectFailure(
                        "protocol",
                        f"no SSH banner from {target.address}:{target.port} within {self.connect_timeout:g} s",
                    ) from None
                raise ConnectFailure(
                    "timed out",
                    f"the SSH handshake with {target.address}:{target.port} did not complete within "
                    f"{self.connect_timeout:g} s (the server sent its banner, then stalled in key exchange)",
                ) from None
            printed = fingerprint(key)
            if target.verify_host_key is not None:
                target.verify_host_key(key.get_name(), printed, key.get_base64())
            self._authenticate(transport, target)
            return transport, printed, target
        except BaseException:
            transport.close()
            raise

    def _authenticate(self, transport: paramiko.Transport, target: Target) -> None:
        try:
            if target.private_key:
                transport.auth_publickey(target.user, load_private_key(target.private_key, target.passphrase))
            elif target.password:
                transport.auth_password(target.user, target.password, fallback=False)
            else:
                raise ConnectFailure("credential", "the node has no credential: set a key or a password")
        except paramiko.BadAuthenticationType as exc:
            raise ConnectFailure(
                "auth rejected", f"{target.user}@{target.address}: server allows only {', '.join(exc.allowed_types)}"
            ) from None
        except paramiko.AuthenticationException as exc:
            method = "key" if target.private_key else "password"
            raise ConnectFailure(
                "auth rejected", f"{target.user}@{target.address}: {method} rejected ({exc})"
            ) from None
        except paramiko.SSHException as exc:
            raise ConnectFailure("protocol", f"authentication failed: {exc}") from None

    def connect(self, target: Target) -> SshSession:
        transport, printed, reached = self._open(target)
        return SshSession(transport, printed, self.connect_timeout, reached.address)

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
        with self.connect(target) as session:
            return session.run(
                command=command, stdin=stdin, timeout=timeout, max_bytes=max_bytes, idle_timeout=idle_timeout
            )


def channel_read(channel: paramiko.Channel, transport: paramiko.Transport) -> bytes | None:
    """The next output of a command: bytes, b"" at its end, None when nothing came within the channel's time-out
    (1 s, which paces read_capped's loop).

    The end is decided before looking at the buffer once more: the output, its EOF and the channel's close arrive
    in order, so when the channel was seen closed every byte is already buffered. Checking "closed" only after the
    time-out lost the last output that arrived in between (a probe cut after a section, on a loaded worker)."""
    try:
        return channel.recv(65536)
    except TimeoutError:
        ended = channel.closed or not transport.is_active()
        if channel.recv_ready():
            return channel.recv(65536)
        return b"" if ended else None


class SshSession:
    """One authenticated connection: run commands to completion, or start one and talk to it line by line."""

    def __init__(
        self, transport: paramiko.Transport, host_key_fingerprint: str, open_timeout: float, address: str = ""
    ) -> None:
        self.transport = transport
        self.host_key_fingerprint = host_key_fingerprint
        self.open_timeout = open_timeout
        self.address = address

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def _channel(self, command: str) -> paramiko.Channel:
        try:
            channel = self.transport.open_session(timeout=self.open_timeout)
            channel.settimeout(1.0)
            channel.exec_command(command)
            return channel
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectFailure("closed", f"could not start a command: {exc or type(exc).__name__}") from None

    def start(self, command: str) -> RemoteProcess:
        return RemoteProcess(self._channel(command))

    def run(
        self, *, command: str, stdin: str, timeout: float, max_bytes: int, idle_timeout: float | None = None
    ) -> ProbeRun:
        started = time.time()
        channel = self._channel(command)
        try:
            channel.sendall(stdin.encode())
            channel.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectFailure(
                "closed", f"the node closed the command's input: {exc or type(exc).__name__}"
            ) from None

        out = read_capped(
            lambda wait: channel_read(channel, self.transport),
            timeout=timeout,
            max_bytes=max_bytes,
            idle_timeout=idle_timeout,
        )
        truncated, timed_out = out.truncated, out.timed_out
        exit_status = None
        if not (timed_out or truncated or out.idle):
            end = time.monotonic() + 2
            while time.monotonic() < end and not channel.exit_status_ready():
                time.sleep(0.02)
            exit_status = channel.recv_exit_status() if channel.exit_status_ready() else None
        channel.close()
        return ProbeRun(
            output=out.data.decode("utf-8", errors="replace"),
            exit_status=exit_status,
            started=started,
            first_byte=out.first_byte,
            finished=time.time(),
            truncated=truncated,
            timed_out=timed_out,
            host_key_fingerprint=self.host_key_fingerprint,
            idle=out.idle,
            address=self.address,
        )


class RemoteProcess:
    """A started command whose stdin stays open (closing it tells the command to stop)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self._buffer = b""

    def readline(self, timeout: float) -> str | None:
        """The next output line, or None at end of output or when `timeout` passes."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                return None
            try:
                data = self.channel.recv(4096)
            except TimeoutError:
                continue
            if not data:
                break
            self._buffer += data
            if len(self._buffer) > 1 << 20:
                break
        line, sep, rest = self._buffer.partition(b"\n")
        if not sep and not line:
            return None
        self._buffer = rest
        return line.decode("utf-8", errors="replace")

    def shutdown(self) -> None:
        """Close the command's stdin: the signal to stop (see close)."""
        try:
            self.channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def close(self, wait: float = 3.0) -> None:
        """Close the command's stdin and wait (up to `wait` s) for it to exit, so that what it held (a listener's
        ports) is released when this returns, not some time after."""
        self.shutdown()
        try:
            deadline = time.monotonic() + wait
            while not self.channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.02)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self.channel.close()

"""Parsers for the operating system sections: os-release, uname, the PCI bus, listening sockets, sysctls."""

import re
import shlex
import socket

from ..facts import Listener, OsRelease, PciDevice


def parse_os_release(text: str) -> OsRelease:
    """Parse /etc/os-release; quoting follows the freedesktop spec (shell-like), unknown keys are kept."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            continue
        try:
            parts = shlex.split(raw, posix=True)
            fields[key] = parts[0] if len(parts) == 1 else " ".join(parts)
        except ValueError:
            fields[key] = raw.strip("\"'")
    return OsRelease(
        id=fields.get("ID", "").lower(),
        version_id=fields.get("VERSION_ID", ""),
        id_like=fields.get("ID_LIKE", "").lower().split(),
        name=fields.get("NAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        fields=fields,
    )


def parse_uname(text: str) -> dict[str, str]:
    """`uname -s -r -m` (one line: kernel name, release, machine; probe version 4 on), or the three lines of
    `uname -s`, `uname -m` and `uname -r` that earlier probes printed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0].split()) == 3:
        kernel, release, machine = lines[0].split()
        return {"kernel": kernel, "machine": machine, "release": release}
    keys = ("kernel", "machine", "release")
    return {key: lines[i] if i < len(lines) else "" for i, key in enumerate(keys)}


def parse_pci_devices(text: str) -> list[PciDevice]:
    """Lines of `ADDRESS VENDOR CLASS [DEVICE]` as the probe reads them from /sys/bus/pci/devices/*."""
    devices = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or not re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]", parts[0]):
            continue
        vendor, klass = parts[1].lower(), parts[2].lower()
        if not (re.fullmatch(r"0x[0-9a-f]{4}", vendor) and re.fullmatch(r"0x[0-9a-f]{6}", klass)):
            continue
        device = parts[3].lower() if len(parts) > 3 else ""
        devices.append(PciDevice(address=parts[0].lower(), vendor_id=vendor, class_code=klass, device_id=device))
    return devices


# ss prints `users:(("name",pid=N,fd=M),("name2",pid=...))` with each name raw: a process may name itself (prctl,
# 15 bytes) `x",pid=1,fd=3))` or put a line break in its name. Names come before their pid, so the last
# `",pid=N,fd=M))` of a line ends the real field (what follows it, `uid:` `ino:` `sk:`, is ss's own) and its pid is the
# kernel's; a name can only change where the name shown starts, never which pid is read.
_USERS_START = 'users:(("'
_USERS_END = re.compile(r'",pid=(\d{1,7}),fd=\d{1,10}\)\)')
_USER_SEP = re.compile(r'",pid=\d{1,7},fd=\d{1,10}\),\("')
_NAME_LIMIT = 64
_CONTINUATION_LIMIT = 16  # a name holds at most 15 line breaks


def _users(line: str) -> tuple[str, int | None]:
    """The last process of a line's `users:((...))` field: (name as printed, pid), or ("", None)."""
    start = line.find(_USERS_START)
    if start < 0:
        return "", None
    body = line[start + len(_USERS_START) :]
    ends = list(_USERS_END.finditer(body))
    if not ends:
        return "", None
    names = body[: ends[-1].start()]
    separators = list(_USER_SEP.finditer(names))
    name = names[separators[-1].end() :] if separators else names
    pid = int(ends[-1].group(1))
    return name[:_NAME_LIMIT], (pid if 0 < pid < 2**22 else None)


def _logical_lines(text: str) -> list[str]:
    """Lines of `ss` output, with a process name's line breaks joined back into the line they split."""
    lines = text.splitlines()
    joined = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if _USERS_START in line and not _USERS_END.search(line[line.find(_USERS_START) :]):
            # the field's end (`",pid=N,fd=M))`) holds no line break, so it is on one of the next lines, whole
            for extra in range(index, min(index + _CONTINUATION_LIMIT, len(lines))):
                if _USERS_END.search(lines[extra]):
                    line, index = "\n".join(lines[index - 1 : extra + 1]), extra + 1
                    break
        joined.append(line)
    return joined


def _split_host_port(local: str, protocol: str) -> tuple[str, int] | None:
    host, sep, port = local.rpartition(":")
    if not sep:
        return None
    if not port.isdigit():
        # Without -n, ss prints service names (ssh, smtp): resolve them as ss did, from the services database.
        try:
            number = socket.getservbyname(port, protocol)
        except OSError:
            return None
        return host.strip("[]").split("%")[0], number
    return host.strip("[]").split("%")[0], int(port)


def parse_ss_listeners(text: str) -> list[Listener]:
    """`ss -Hltnp` (or with a header, with or without the Netid column); process names need root to show."""
    listeners = []
    for line in _logical_lines(text):
        parts = line.split()
        if len(parts) < 5:
            continue
        protocol = "tcp"
        if parts[0] in ("tcp", "udp", "tcp6", "udp6", "raw", "u_str", "u_dgr", "u_seq", "sctp"):
            protocol = parts[0].rstrip("6")
            parts = parts[1:]
        if len(parts) < 5 or parts[0] not in ("LISTEN", "UNCONN") or not parts[1].isdigit():
            continue
        if parts[0] == "UNCONN" and protocol == "tcp":
            protocol = "udp"
        address = _split_host_port(parts[3], protocol)
        if address is None:
            continue
        process, pid = _users(line)
        listeners.append(Listener(protocol=protocol, address=address[0], port=address[1], process=process, pid=pid))
    return listeners


def parse_port_ranges(text: str) -> list[tuple[int, int]]:
    """`ip_local_port_range` ("32768\\t60999") or `ip_local_reserved_ports` ("8080,40000-40063")."""
    text = text.strip()
    if re.fullmatch(r"\d+\s+\d+", text):
        first, last = (int(x) for x in text.split())
        return [(first, last)]
    ranges = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if match:
            ranges.append((int(match.group(1)), int(match.group(2) or match.group(1))))
    return ranges

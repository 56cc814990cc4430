"""Addresses, routes and proxy settings: `ip -o addr show`, `ip -o route get`, `systemctl show docker
--property=Environment`, /etc/environment and /etc/docker/daemon.json."""

import ipaddress
import json
import re
import shlex

from ..facts import Address, ProxySetting

_ADDR = re.compile(r"^\d+:\s+(\S{1,64})\s+(inet6?)\s+([0-9A-Fa-f.:]{2,45})/(\d{1,3})\b(.*)$")
_SCOPE = re.compile(r"\bscope\s+(\w+)")
_PROXY_KEYS = {"http_proxy": "http", "https_proxy": "https", "no_proxy": "no_proxy"}


def _ip(text: str) -> str:
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return ""


def parse_ip_addresses(text: str) -> list[Address]:
    """`ip -o addr show`: one address per line (`N: IFNAME    inet A.B.C.D/P ... scope global ...`)."""
    found = []
    for line in text.splitlines()[:2000]:
        match = _ADDR.match(line.strip())
        if not match:
            continue
        address = _ip(match.group(3))
        scope = _SCOPE.search(match.group(5))
        if address:
            interface = match.group(1).split("@", 1)[0]
            found.append(
                Address(interface, match.group(2), address, int(match.group(4)), scope.group(1) if scope else "")
            )
    return found


def parse_route_source(text: str) -> str:
    """`ip -o route get ADDRESS`: the source address the kernel would use (`... src A.B.C.D ...`), or ""."""
    match = re.search(r"\bsrc\s+([0-9A-Fa-f.:]{2,45})\b", text[:4000])
    return _ip(match.group(1)) if match else ""


def _split_no_proxy(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()][:200]


def _setting(source: str, values: dict[str, str]) -> ProxySetting:
    setting = ProxySetting(source)
    for key, value in values.items():
        field = _PROXY_KEYS.get(key.strip().lower())
        if field == "http":
            setting.http = setting.http or value.strip()
        elif field == "https":
            setting.https = setting.https or value.strip()
        elif field == "no_proxy" and not setting.no_proxy:
            setting.no_proxy = _split_no_proxy(value)
    return setting


def parse_systemd_environment(text: str) -> ProxySetting:
    """`systemctl show docker --property=Environment`: `Environment=HTTP_PROXY=... NO_PROXY=...` (values with
    spaces are double-quoted by systemd)."""
    line = next((line for line in text.splitlines() if line.startswith("Environment=")), "")
    try:
        words = shlex.split(line.removeprefix("Environment=")[:20000])
    except ValueError:
        words = line.removeprefix("Environment=").split()
    values = dict(word.split("=", 1) for word in words if "=" in word)
    return _setting("Docker service environment (systemd)", values)


def parse_environment_values(text: str) -> dict[str, str]:
    """/etc/environment: `KEY=value` or `KEY="value"` lines (pam_env's format; `export` is tolerated)."""
    values: dict[str, str] = {}
    for line in text.splitlines()[:500]:
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            values.setdefault(key, value.strip().strip("'\"")[:500])
    return values


def parse_environment_file(text: str) -> ProxySetting:
    """The proxy settings of /etc/environment."""
    return _setting("/etc/environment", parse_environment_values(text))


def parse_daemon_json_proxies(text: str) -> ProxySetting:
    """/etc/docker/daemon.json `proxies` (Docker 23+): `http-proxy`, `https-proxy`, `no-proxy`."""
    try:
        document = json.loads(text[:200000])
    except ValueError:
        return ProxySetting("/etc/docker/daemon.json")
    proxies = document.get("proxies") if isinstance(document, dict) else None
    if not isinstance(proxies, dict):
        return ProxySetting("/etc/docker/daemon.json")
    values = {key.replace("-", "_"): str(value) for key, value in proxies.items() if isinstance(value, str)}
    return _setting("/etc/docker/daemon.json", values)


def docker_info_proxies(http: str, https: str, no_proxy: str) -> ProxySetting:
    """The proxy the running Docker daemon uses, as `docker info` reports it (whatever configured it)."""
    return ProxySetting("docker info", http.strip(), https.strip(), _split_no_proxy(no_proxy))

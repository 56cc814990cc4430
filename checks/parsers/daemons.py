"""Parsers for Docker and time synchronisation: `docker info`, `chronyc tracking`, `timedatectl`, `ntpq -pn`."""

import re

from ..facts import ChronyTracking, DockerInfo, TimedatectlStatus
from .tables import colon_pairs

_DAEMON_ERRORS = (
    "Cannot connect to the Docker daemon",
    "permission denied while trying to connect",
    "Is the docker daemon running",
    "error during connect",
)


def parse_docker_info(text: str) -> DockerInfo:
    """`docker info` (text): server version, runtimes, default runtime, OS; the daemon error if the client says one."""
    info = DockerInfo()
    for line in text.splitlines():
        stripped = line.strip()
        key, sep, value = stripped.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "Server Version":
            info.server_version = value
        elif key == "Runtimes":
            info.runtimes = value.split()
        elif key == "Default Runtime":
            info.default_runtime = value
        elif key == "Operating System":
            info.operating_system = value
        elif key == "Cgroup Driver":
            info.cgroup_driver = value
        elif key == "Docker Root Dir":
            info.root_dir = value
        elif key == "HTTP Proxy":
            info.http_proxy = value
        elif key == "HTTPS Proxy":
            info.https_proxy = value
        elif key == "No Proxy":
            info.no_proxy = value
    for marker in _DAEMON_ERRORS:
        index = text.find(marker)
        if index >= 0:
            start = text.rfind("\n", 0, index) + 1
            end = text.find("\n", index)
            info.error = text[start : end if end >= 0 else None].strip()
            break
    return info


def parse_chronyc_tracking(text: str) -> ChronyTracking:
    pairs = colon_pairs(text)
    tracking = ChronyTracking(reference_id=pairs.get("Reference ID", ""), leap_status=pairs.get("Leap status", ""))
    system_time = re.match(r"([\d.]+) seconds (fast|slow)", pairs.get("System time", ""))
    if system_time:
        offset = float(system_time.group(1))
        tracking.offset_seconds = offset if system_time.group(2) == "fast" else -offset
    if pairs.get("Stratum", "").isdigit():
        tracking.stratum = int(pairs["Stratum"])
    return tracking


def _yes_no(value: str) -> bool | None:
    value = value.strip().lower()
    return True if value == "yes" else False if value == "no" else None


def parse_timedatectl(text: str) -> TimedatectlStatus:
    """`timedatectl status` or `timedatectl show` (Key=value) output."""
    status = TimedatectlStatus()
    pairs = colon_pairs(text)
    for line in text.splitlines():
        if "=" in line and ":" not in line.split("=", 1)[0]:
            key, _, value = line.partition("=")
            pairs.setdefault(key.strip(), value.strip())
    for key in ("System clock synchronized", "NTPSynchronized"):
        if key in pairs:
            status.synchronized = _yes_no(pairs[key])
            break
    if text.strip() in ("yes", "no"):  # `timedatectl show -p NTPSynchronized --value`
        status.synchronized = _yes_no(text)
    status.ntp_service = pairs.get("NTP service", pairs.get("NTP", ""))
    status.time_zone = pairs.get("Time zone", pairs.get("Timezone", ""))
    if "RTC in local TZ" in pairs:
        status.rtc_local = _yes_no(pairs["RTC in local TZ"])
    return status


def parse_ntpq_peers(text: str) -> bool | None:
    """`ntpq -pn`: synchronized when a peer line starts with '*' (the system peer); None if no peer table."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not any(line.lstrip().startswith("remote") for line in lines):
        return None
    return any(line.startswith("*") for line in lines)

"""The production units (deploy/systemd/) are valid for systemd and run the portal, the worker and beat as the
unprivileged `preflight` user in a sandbox: `systemd-analyze verify` passes and `systemd-analyze security` rates each.

The units name the installed paths (/opt/preflight); the check points their executables at this checkout's .venv,
because `verify` also checks that every ExecStart= program exists and is executable.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, missing_prerequisite

UNITS = REPO / "deploy" / "systemd"
SERVICES = ["preflight-web.service", "preflight-worker.service", "preflight-beat.service"]
# What each unit must hold: who it runs as and the sandbox (README, "Production: systemd units").
HARDENING = {
    "User": "preflight",
    "Group": "preflight",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "ReadWritePaths": "/var/lib/preflight",
    "StateDirectoryMode": "0700",
}
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 is fully sandboxed, 10 is none; the units rate 1.4 today


def _analyze():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        missing_prerequisite("systemd-analyze is not installed (Debian package systemd; scripts/test.sh installs it)")
    return tool


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The units as installed, with /opt/preflight/.venv/bin pointing at this checkout's executables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("gunicorn", "celery", "python"):
        (bin_dir / program).symlink_to(REPO / ".venv" / "bin" / program)
    for name in SERVICES:
        text = (UNITS / name).read_text().replace("/opt/preflight/.venv/bin", str(bin_dir))
        (tmp_path / name).write_text(text)
    return tmp_path


def test_systemd_analyze_verify_passes_for_every_unit(installed):
    tool = _analyze()
    # when
    done = subprocess.run(
        [tool, "verify", *SERVICES], cwd=installed, capture_output=True, text=True, timeout=120, check=False
    )
    # then: no error and no warning (verify prints unknown directives and bad values, even when it exits 0)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_every_unit_runs_as_preflight_in_a_sandbox(name):
    # given
    settings = _settings((UNITS / name).read_text())
    # then
    for key, value in HARDENING.items():
        assert settings.get(key) == [value], (name, key, settings.get(key))
    assert "root" not in settings["User"]
    assert settings["SystemCallFilter"] == ["@system-service", "~@privileged"]


def test_beat_is_its_own_unit_and_the_worker_does_not_embed_it():
    worker = _settings((UNITS / "preflight-worker.service").read_text())["ExecStart"][0]
    beat = _settings((UNITS / "preflight-beat.service").read_text())["ExecStart"][0]
    web = _settings((UNITS / "preflight-web.service").read_text())["ExecStart"][0]
    assert re.search(r"celery -A portal worker\b", worker) and not re.search(r"\s(-B|--beat)\b", worker)
    assert re.search(r"celery -A portal beat\b", beat)
    assert beat.startswith("/usr/bin/flock --nonblock ")  # a second beat on this host exits instead of running
    assert "gunicorn -c /opt/preflight/portal/gunicorn.conf.py" in web


@pytest.mark.parametrize("name", SERVICES)
def test_systemd_analyze_security_rates_every_unit_well_sandboxed(installed, name):
    tool = _analyze()
    # when
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", name],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # then
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout

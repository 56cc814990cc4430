"""The matrix makes room for its open connections: the soft open-files limit is raised up to the hard one, and a
hard limit too low for the cluster is a clear error, not a storm of 'Too many open files'. Each case runs in its own
interpreter, since a lowered hard limit cannot be raised again."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    prelude = "import resource\nfrom checks.rlimits import OpenFilesLimit, make_room_for_open_files\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_soft_limit_is_raised_to_what_the_run_needs():
    run = _run(
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "print(make_room_for_open_files(3000), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
        "print(make_room_for_open_files(100), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    assert run.returncode == 0, run.stderr
    # raised to 3,000; a smaller need later never lowers it
    assert run.stdout.split("\n")[:2] == ["3000 (3000, 4096)", "3000 (3000, 4096)"]


def test_a_hard_limit_below_the_need_is_a_clear_error():
    run = _run(
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))\n"
        "try:\n"
        "    make_room_for_open_files(3256)\n"
        "except OpenFilesLimit as exc:\n"
        "    print(exc)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    assert run.returncode == 0, run.stderr
    message, limits = run.stdout.strip().split("\n")
    assert "needs about 3256 open files" in message and "at most 512" in message and "LimitNOFILE" in message
    assert limits == "(256, 512)"  # left as it was

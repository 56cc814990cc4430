"""No other user of the machine can read what the portal writes (issue 19): serve.sh's set-up functions run in a copy
of the project that an earlier serve.sh (umask 022) left with 644 files, and afterwards nothing the portal wrote
there is readable, writable or searchable by group or others.

A local user who can copy db.sqlite3 reads every session key, so a superuser's session; .env holds the keys.
"""

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.conftest import REPO, missing_prerequisite

COPIED = [
    "manage.py",
    "requirements.txt",
    "requirements-dev.txt",
    "portal",
    "checks",
    "inventory",
    "templates",
    "scripts",
]
OLD_ENV = (
    "SECRET_KEY=old-run-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz\n"
    "PREFLIGHT_FERNET_KEYS=YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=\n"  # a test key: 32 bytes of "a"
    "DEBUG=False\nALLOWED_HOSTS=127.0.0.1\n"
)


def _clean_env() -> dict[str, str]:
    """The environment of a shell that runs serve.sh: no test settings, no database URL, no CI knobs."""
    return {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TERM") if key in os.environ}


def _project(tmp_path: Path) -> tuple[Path, set[Path]]:
    project = tmp_path / "preflight"
    project.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    (project / ".venv").symlink_to((REPO / ".venv").resolve())
    shipped = {p for p in project.rglob("*") if not p.is_relative_to(project / ".venv")}
    return project, shipped


def _old_run(project: Path) -> None:
    """What serve.sh before issue 19 left: a 644 database, .env, logs and static files, 755 folders."""
    old = os.umask(0o022)
    try:
        (project / "db.sqlite3").touch()  # an empty file is an empty SQLite database
        (project / ".env").write_text(OLD_ENV)
        (project / "run" / "redis").mkdir(parents=True)
        (project / "run" / "celery.log").write_text("[2026-12-01 10:00:00] old log\n")
        (project / "run" / "admin-password").write_text("old\n")
        (project / "staticfiles").mkdir()
        (project / "staticfiles" / "old.css").write_text("body{}\n")
        for path in [project / "db.sqlite3", project / ".env", *project.joinpath("run").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (project / "run").chmod(0o755)
    finally:
        os.umask(old)


def _open_to_others(path: Path) -> bool:
    return bool(stat.S_IMODE(path.lstat().st_mode) & 0o077)


def test_nothing_the_portal_writes_is_readable_by_another_user(tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_prerequisite("redis-server and redis-cli are not installed")
    # given a copy of the project that an older serve.sh ran in, and a login shell's umask (022)
    project, shipped = _project(tmp_path)
    _old_run(project)
    socket = project / "run" / "redis" / "redis.sock"
    setup = (
        'set -euo pipefail; source scripts/bootstrap.sh; cd "$ROOT"; '
        'portal_private_files; portal_setup "$1"; ensure_redis "$1"; "$VENV/bin/python" manage.py ensure_admin'
    )
    # when serve.sh's set-up functions run (everything before it serves: .env, database, static, demo, Redis, admin)
    try:
        done = subprocess.run(
            ["bash", "-c", setup, "setup", str(socket)],
            cwd=project,
            env=_clean_env(),
            umask=0o022,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # and the portal writes to its database from a process with the usual umask (a session, as a login does),
        # reporting the modes of the database and the -wal/-shm files SQLite holds open meanwhile
        write = (
            "import json, os\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "s = SessionStore(); s['who'] = 'admin'; s.create()\n"
            "print(json.dumps({n: oct(os.stat(n).st_mode & 0o777) for n in sorted(os.listdir('.'))"
            " if n.startswith('db.sqlite3')}))\n"
        )
        session = subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "manage.py", "shell", "-c", write],
            cwd=project,
            env=_clean_env(),
            umask=0o022,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert session.returncode == 0, session.stderr
    finally:
        subprocess.run(["redis-cli", "-s", str(socket), "shutdown", "nosave"], capture_output=True, timeout=30)
    # then every file and folder the portal wrote, and every one an earlier run left, is its user's alone
    modes = json.loads(session.stdout.strip().splitlines()[-1])
    assert {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"} <= set(modes), modes
    assert set(modes.values()) == {"0o600"}, modes
    written = [p for p in project.rglob("*") if p not in shipped and p != project / ".venv" and not p.is_symlink()]
    expected = {".env", "db.sqlite3", "run", "run/redis", "run/redis/redis.log", "run/admin-password", "staticfiles"}
    assert expected <= {str(p.relative_to(project)) for p in written}
    assert any(p.match("staticfiles/admin/css/*.css") for p in written)  # collectstatic ran
    readable = sorted(
        f"{p.relative_to(project)} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in written if _open_to_others(p)
    )
    assert readable == [], readable
    assert len(written) > 100  # the walk saw the static files, not an empty folder
    # and the old .env was kept (its keys decrypt stored credentials), with the settings added since appended
    assert (project / ".env").read_text().startswith(OLD_ENV)
    assert "PREFLIGHT_TARGET_NETWORKS=127.0.0.0/8" in (project / ".env").read_text()


def test_the_portal_makes_an_existing_sqlite_database_private_when_it_connects(tmp_path, django_db_blocker):
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper

    # given a database and its WAL that a process under umask 022 left world-readable
    database = tmp_path / "db.sqlite3"
    for path in (database, tmp_path / "db.sqlite3-wal"):
        path.touch()
        path.chmod(0o644)
    wrapper = DatabaseWrapper({**connections["default"].settings_dict, "NAME": str(database)}, alias="modes")
    # when the portal opens a connection to it (the connection_created signal)
    with django_db_blocker.unblock():
        try:
            wrapper.ensure_connection()
        finally:
            wrapper.close()
    # then both are 600
    assert oct(database.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "db.sqlite3-wal").stat().st_mode & 0o777) == "0o600"

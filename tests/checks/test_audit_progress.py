"""`manage.py audit` keeps a live line on stderr on a terminal (a real pty here), and is silent with --json or when
stderr is not a terminal. The audit is real; only the SSH sessions are replayed (tests/replay.py)."""

import io
import os
import threading

import pytest
from django.core.management import call_command

from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(monkeypatch):
    """Cluster `lab`: a server and two workers whose recorded outputs show no NTP (time.ntp fails on each)."""
    cluster = ClusterFactory(name="lab")
    credential = CredentialFactory()
    outputs = {}
    for i, (name, role) in enumerate((("srv", "server"), ("w1", "worker"), ("w2", "worker"))):
        address = f"127.0.0.{i + 2}"
        NodeFactory(cluster=cluster, name=name, role=role, address=address, credential=credential)
        outputs[address] = sections(ntp=False)
    transport = ReplayTransport(outputs)
    monkeypatch.setattr("checks.services.node.transport_for", lambda node: transport)
    monkeypatch.setattr("checks.services.network.transport_for", lambda node: transport)
    return cluster


def _audit(*args, stderr) -> str:
    stdout = io.StringIO()
    try:
        call_command("audit", "--cluster", "lab", *args, stdout=stdout, stderr=stderr)
    except SystemExit:
        pass
    return stdout.getvalue()


def _on_a_pty(*args) -> tuple[str, str]:
    """Run the audit with stderr on the slave end of a pty; everything the master end reads, and stdout."""
    master, slave = os.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read while it writes: a full pty buffer would block the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the slave end is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(slave, "w") as terminal:
        stdout = _audit(*args, stderr=terminal)
    reader.join(timeout=10)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace"), stdout


def test_on_a_terminal_the_audit_keeps_a_live_line_of_nodes_failures_and_the_matrix(lab):
    # given a cluster of three nodes that each fail a check, and stderr on a terminal
    # when the audit runs
    live, stdout = _on_a_pty()
    # then stderr showed the nodes done of total, the failures, and the matrix's phase with its paths
    assert "nodes" in live and "3/3" in live
    assert "3 failed" in live
    assert "matrix: done, 6 paths" in live
    assert "\x1b[" in live  # redrawn in place with terminal control sequences
    # and the results still went to stdout, without the live line
    assert "Audit " in stdout and "3/3" not in stdout


def test_with_json_the_terminal_stays_silent(lab):
    live, stdout = _on_a_pty("--json")
    assert live == "" and stdout.lstrip().startswith("{")


def test_when_stderr_is_not_a_terminal_nothing_is_drawn(lab):
    stderr = io.StringIO()
    stdout = _audit(stderr=stderr)
    assert stderr.getvalue() == "" and "Audit " in stdout


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_manage_py_audit_on_a_pty_draws_the_line_and_is_silent_in_a_pipe():
    """The command as an operator runs it: a process of its own whose stderr is a pty, on nodes that fail fast
    (nothing listens on port 1 of loopback: each login is refused at once)."""
    import subprocess
    import sys

    from django.conf import settings

    # given a committed cluster of four nodes (a server, three workers) that cannot be reached
    cluster = ClusterFactory(name="fast")
    for i in range(4):
        role = "server" if i == 0 else "worker"  # a server and workers: the audit has a matrix
        NodeFactory(
            cluster=cluster, name=f"n{i}", role=role, address="127.0.0.1", ssh_port=1, credential=CredentialFactory()
        )
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip(
            "the manage.py subprocess reads the SQLite test database by its file; the PostgreSQL run covers "
            "the same line in-process (test above)"
        )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
    }
    command = [sys.executable, "manage.py", "audit", "--cluster", "fast"]
    # when it runs with stderr on a terminal
    master, slave = os.openpty()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=settings.BASE_DIR) as process:
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not data:
                break
            chunks.append(data)
        stdout = process.stdout.read().decode()
        assert process.wait(timeout=60) == 1
    os.close(master)
    live = b"".join(chunks).decode("utf-8", "replace")
    # then the terminal saw every node done and every one failed; stdout has the table only
    assert "4/4" in live and "4 failed" in live and "matrix: done, 12 paths (0 to probe)" in live, live[-500:]
    assert "Audit " in stdout and "4/4" not in stdout
    # and with stderr in a pipe, the same command draws nothing there
    piped = subprocess.run(command, capture_output=True, text=True, env=env, cwd=settings.BASE_DIR, timeout=60)
    assert piped.returncode == 1 and "4/4" not in piped.stderr and "failed" not in piped.stderr


def test_the_live_line_says_which_chunk_of_a_big_matrix_runs():
    from checks.management.commands.audit import AuditProgress

    line = AuditProgress(stream=io.StringIO(), enabled=False)
    detail = lambda: line.progress.tasks[0].fields["detail"]  # noqa: E731
    line.event("matrix", phase="probing", paths=1497, runnable=1497, chunk=2, chunks=24)
    assert detail() == "0 failed · matrix chunk 2 of 24: probing, 1497 paths (1497 to probe)"
    line.event("matrix", phase="done", paths=6, runnable=6, chunk=1, chunks=1)
    assert detail() == "0 failed · matrix: done, 6 paths (6 to probe)"

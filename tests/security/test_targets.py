"""The hostile network: a node name whose DNS answer changes between the policy check and the connection, the
matrix's listener and prober targets, and production settings that would allow any address by default."""

import os
import socket
import subprocess
import sys
import threading

import pytest
from django.test import override_settings
from django.utils import timezone

from checks.choices import RunState
from checks.models import Audit, NodeAudit
from checks.services import audit_start, network_matrix_run, node_audit_run
from checks.targets import target_address, target_addresses
from checks.transport import ConnectFailure, Target
from tests.conftest import REPO
from tests.factories import ClusterFactory, NodeFactory

from . import fake_dns

pytestmark = pytest.mark.django_db

REBIND = "rebind.preflight.test"
ALLOWED, OUTSIDE = "127.0.0.2", "127.0.0.3"  # both loopback: nothing leaves this machine whatever the code does
POLICY = override_settings(
    PREFLIGHT_TARGET_NETWORKS=[f"{ALLOWED}/32"],
    PREFLIGHT_TARGET_ALLOW_NAMES=True,
    PREFLIGHT_TARGET_RESOLVER="tests.security.fake_dns.rebinding",
)


class Recorder:
    """TCP listeners on ALLOWED and OUTSIDE (same port) that count who connects, then hang up (no SSH spoken)."""

    def __init__(self) -> None:
        self.hits = {ALLOWED: 0, OUTSIDE: 0}
        first = socket.create_server((ALLOWED, 0))
        self.port = first.getsockname()[1]
        self.sockets = [first, socket.create_server((OUTSIDE, self.port))]
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.sockets]
        for thread in self.threads:
            thread.start()

    def _serve(self, server: socket.socket) -> None:
        address = server.getsockname()[0]
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            self.hits[address] += 1
            conn.close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


def _audit_one(node):
    audit = audit_start(cluster=node.cluster)
    node_audit = audit.node_audits.get()
    node_audit_run(node_audit_id=node_audit.pk)
    node_audit.refresh_from_db()
    return node_audit, {r.check_id: r for r in node_audit.results.all()}


@POLICY
def test_rebinding_name_is_connected_at_the_checked_address(recorder, root_credential):
    # given: the name answers an allowed address first, an address outside the policy on every later lookup
    fake_dns.reset(**{REBIND: [ALLOWED, OUTSIDE]})
    node = NodeFactory(address=REBIND, ssh_port=recorder.port, credential=root_credential)
    # when
    node_audit, checks = _audit_one(node)
    # then: one lookup, one connection, to the address that was checked; the later answer is never used
    assert fake_dns.CALLS == [REBIND]
    assert recorder.hits == {ALLOWED: 1, OUTSIDE: 0}
    assert checks["ssh.connect"].status == "fail" and ALLOWED in node_audit.error and "dns" not in node_audit.error


@POLICY
def test_name_first_answering_outside_the_policy_is_refused_before_any_packet(recorder, root_credential):
    fake_dns.reset(**{REBIND: [OUTSIDE, ALLOWED]})
    node = NodeFactory(address=REBIND, ssh_port=recorder.port, credential=root_credential)
    node_audit, checks = _audit_one(node)
    assert recorder.hits == {ALLOWED: 0, OUTSIDE: 0} and fake_dns.CALLS == [REBIND]
    assert "outside the networks this portal may audit" in checks["ssh.connect"].summary


@POLICY
def test_target_address_is_the_first_answer_and_checked():
    fake_dns.reset(**{REBIND: [ALLOWED, OUTSIDE]})
    assert target_address(REBIND, 22) == ALLOWED
    with pytest.raises(ConnectFailure, match="outside the networks"):
        target_address(REBIND, 22)  # the next lookup answers outside: refused, not used
    with pytest.raises(ConnectFailure, match="outside the networks"):
        target_address(OUTSIDE, 22)
    fake_dns.reset()
    with pytest.raises(ConnectFailure) as failure:
        target_address("unknown.preflight.test", 22)
    assert failure.value.reason == "dns"


@POLICY
def test_of_several_answers_the_first_inside_the_policy_is_used():
    fake_dns.ANSWERS.clear()
    fake_dns.ANSWERS[REBIND] = [["198.51.100.7", ALLOWED, OUTSIDE]]
    fake_dns.CALLS.clear()
    assert target_address(REBIND, 22) == ALLOWED


@POLICY
def test_every_answer_inside_the_policy_is_kept_in_order_for_the_login_to_fall_back_to():
    fake_dns.ANSWERS.clear()
    fake_dns.ANSWERS[REBIND] = [["198.51.100.7", ALLOWED, OUTSIDE, ALLOWED]]
    fake_dns.CALLS.clear()
    assert target_addresses(REBIND, 22) == [ALLOWED] and fake_dns.CALLS == [REBIND]


@override_settings(PREFLIGHT_TARGET_NETWORKS=["*"], PREFLIGHT_TARGET_RESOLVER="tests.security.fake_dns.rebinding")
def test_star_allows_any_address_but_still_resolves_once():
    fake_dns.reset(**{REBIND: ["198.51.100.7", ALLOWED]})
    assert target_address(REBIND, 22) == "198.51.100.7" and fake_dns.CALLS == [REBIND]


@POLICY
def test_matrix_listener_and_prober_targets_obey_the_policy(root_credential):
    # given: a finished audit of two nodes with python, one of them a name that resolves outside the policy
    fake_dns.reset(**{REBIND: [OUTSIDE]})
    cluster = ClusterFactory()
    server = NodeFactory(cluster=cluster, name="srv", role="server", address=REBIND, credential=root_credential)
    worker = NodeFactory(cluster=cluster, name="w1", address=ALLOWED, ssh_port=1, credential=root_credential)
    now = timezone.now()
    audit = Audit.objects.create(
        cluster=cluster, profile=cluster.profile, profile_key="gpustack-2.0", state=RunState.RUNNING, started=now
    )
    for node in (server, worker):
        NodeAudit.objects.create(
            audit=audit,
            node=node,
            state=RunState.DONE,
            status="pass",
            finished=now,
            facts={"python": "/usr/bin/python3", "firewall": "none"},
        )
    # when
    paths = network_matrix_run(audit_id=audit.pk)
    # then: every path touching srv is untested because of the policy; none connected to its address
    touching = [p for p in paths if "srv" in (p.source.name, p.destination.name)]
    assert touching and all(p.status == "error" and "outside the networks" in p.summary for p in touching)
    assert fake_dns.CALLS == [REBIND]


def test_target_repr_hides_secrets():
    target = Target(address="10.0.0.1", password="hunter2", private_key="-----BEGIN KEY-----", passphrase="pp")
    text = repr(target) + str(target)
    assert "hunter2" not in text and "BEGIN KEY" not in text and "'pp'" not in text and "10.0.0.1" in text


def _settings_import(**env) -> subprocess.CompletedProcess:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "DJANGO_SETTINGS_MODULE": "portal.settings.base",
        "PREFLIGHT_ENV_FILE": "/dev/null",
        "SECRET_KEY": "x" * 60,
        "PREFLIGHT_FERNET_KEYS": "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhIT0=",
        "DEBUG": "False",
        **env,
    }
    code = "import django; django.setup(); from django.conf import settings; print(settings.PREFLIGHT_TARGET_NETWORKS)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60
    )


def test_production_settings_refuse_an_empty_target_list():
    empty = _settings_import()
    assert empty.returncode != 0 and "PREFLIGHT_TARGET_NETWORKS is empty" in empty.stderr
    star = _settings_import(PREFLIGHT_TARGET_NETWORKS="*")
    assert star.returncode == 0 and "['*']" in star.stdout
    bad = _settings_import(PREFLIGHT_TARGET_NETWORKS="10.0.0.0/8,not-a-cidr")
    assert bad.returncode != 0 and "not-a-cidr" in bad.stderr
    debug = _settings_import(DEBUG="True")
    assert debug.returncode == 0

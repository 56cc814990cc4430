"""Cluster network readiness over real test hosts, each in its own network namespace with its own iptables."""

import subprocess

import pytest
from django.core.management import call_command

from checks.choices import NetworkState, RunState
from checks.models import Audit, NetworkPath
from inventory.choices import NodeRole
from tests.lab import nodes

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
NETWORK = ("network.server_to_worker", "network.worker_to_server", "network.worker_to_worker")


@pytest.fixture(scope="module")
def net(lab):
    return {name: lab.add(nodes.plain(name)) for name in ("srv", "w1", "w2", "w3")}


@pytest.fixture
def firewall(net):
    """Apply iptables rules inside a node's namespace; every rule is flushed after the test."""
    touched = set()

    def apply(name: str, rule: str) -> None:
        result = net[name].exec(f"iptables {rule}")
        assert result.returncode == 0, result.stderr
        touched.add(name)

    yield apply
    for name in touched:
        net[name].exec("iptables -F INPUT")


@pytest.fixture
def cluster_of(lab, net):
    def make(name: str, **options):
        cluster = make_cluster(name, **options)
        key = lab_credential(lab)
        add_lab_nodes(cluster, [net["srv"]], key, role=NodeRole.SERVER)
        add_lab_nodes(cluster, [net["w1"], net["w2"], net["w3"]], key)
        return cluster

    return make


def _audit(cluster_name: str) -> Audit:
    try:
        call_command("audit", "--cluster", cluster_name, "--json", stdout=open("/dev/null", "w"))
    except SystemExit:
        pass
    audit = Audit.objects.filter(cluster__name=cluster_name).first()
    assert audit.state == RunState.DONE and audit.network_state == NetworkState.DONE, audit.error
    save_output(
        f"network-{cluster_name}.txt",
        "\n\n".join(
            f"{p.check_id} {p.status}: {p.summary}\n{p.evidence}" for p in audit.paths.select_related("source")
        ),
    )
    return audit


def _listening_ports(lab_node) -> set[int]:
    out = lab_node.exec("ss -Hltn").stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


@pytest.fixture(autouse=True)
def no_listener_left_behind(net):
    yield
    for name, lab_node in net.items():
        left = _listening_ports(lab_node) - {22, 10151}
        assert left == set(), f"a listener is still open on {name}: {sorted(left)}"


def test_open_cluster_passes_every_network_check(lab, net, cluster_of):
    # given
    cluster_of("open")
    logins = {name: lab.accepted_logins(node) for name, node in net.items()}
    # when
    audit = _audit("open")
    # then
    for worker in ("w1", "w2", "w3"):
        checks = checks_of(audit.pk, worker)
        assert {c: checks[c].status for c in NETWORK} == {c: "pass" for c in NETWORK}, worker
    s2w = checks_of(audit.pk, "w1")["network.server_to_worker"]
    assert s2w.summary == "all paths open: srv -> w1"
    # server 3 x 3 workers... every planned path is stored: 3 S2W + 3 W2S + 6 W2W
    assert audit.paths.count() == 12 and set(audit.paths.values_list("status", flat=True)) == {"pass"}
    assert not audit.paths.filter(outcomes__has_key="6379").exists()  # Ray only with distributed vLLM
    # one login for the node audit, one for the matrix: the prober runs over the listener's connection
    assert {name: lab.accepted_logins(node) - logins[name] for name, node in net.items()} == dict.fromkeys(net, 2)


def test_dropped_port_times_out(cluster_of, firewall):
    # given: w1 silently drops its worker port
    firewall("w1", "-A INPUT -p tcp --dport 10150 -j DROP")
    cluster_of("drop")
    # when
    audit = _audit("drop")
    # then
    result = checks_of(audit.pk, "w1")["network.server_to_worker"]
    assert result.status == "fail" and result.summary == "srv -> w1: 10150 timed out (blocked at w1, here)"
    assert "10150: timed out" in result.evidence and "a DROP rule" in result.remediation
    assert "10150: w1's own firewall rule: -A INPUT -p tcp -m tcp --dport 10150 -j DROP" in result.evidence
    assert checks_of(audit.pk, "w2")["network.server_to_worker"].status == "pass"
    # the server's end shows the path blocked at w1, without counting it against the server
    server = checks_of(audit.pk, "srv")["network.server_to_worker"]
    assert server.status == "warn" and "srv -> w1: 10150 timed out (blocked at w1)" in server.summary


def test_rejected_range_is_refused_while_listening(cluster_of, firewall):
    firewall("w2", "-A INPUT -p tcp --dport 40000:40063 -j REJECT --reject-with tcp-reset")
    cluster_of("reject")
    audit = _audit("reject")
    result = checks_of(audit.pk, "w2")["network.server_to_worker"]
    assert result.status == "fail" and result.summary == "srv -> w2: 40000-40063 refused (blocked at w2, here)"
    assert "40000: refused ECONNREFUSED (listening)" in result.evidence
    assert "REJECT rule with tcp-reset" in result.remediation
    assert checks_of(audit.pk, "w2")["network.worker_to_worker"].status == "pass"  # 40064-40095 still open


def test_server_rejecting_with_icmp_fails_the_server_and_workers_stay_ready(cluster_of, firewall, client, net):
    # given: the server's own firewall rejects the UI and worker-to-server ports from everyone
    firewall("srv", "-A INPUT -p tcp -m multiport --dports 80,10161 -j REJECT --reject-with icmp-admin-prohibited")
    cluster_of("icmp")
    # when
    audit = _audit("icmp")
    # then: the block counts against the server, where the rule must change, with the fix on it
    server = checks_of(audit.pk, "srv")["network.worker_to_server"]
    assert server.status == "fail", server.summary
    assert "w1 -> srv: 80, 10161 unreachable (blocked at srv, here)" in server.summary
    assert "On srv: Open TCP 80, 10161 inbound in srv's iptables firewall." in server.remediation
    assert server.commands == [
        "iptables -C INPUT -p tcp --dport 80 -j ACCEPT 2>/dev/null || iptables -I INPUT -p tcp --dport 80 -j ACCEPT",
        "iptables -C INPUT -p tcp --dport 10161 -j ACCEPT 2>/dev/null || "
        "iptables -I INPUT -p tcp --dport 10161 -j ACCEPT",
    ]
    assert "ICMP type 3 code 13 sent by " + net["srv"].address + " (srv)" in server.evidence
    assert audit.node_audits.get(node__name="srv").status == "fail"
    # and the workers stay ready: they show the path blocked at the server, as a warning with no fix of theirs
    for worker in ("w1", "w2", "w3"):
        result = checks_of(audit.pk, worker)["network.worker_to_server"]
        assert result.status == "warn", worker
        assert result.summary == f"{worker} -> srv: 80, 10161 unreachable (blocked at srv)"
        assert result.remediation == "" and result.commands == []
        assert audit.node_audits.get(node__name=worker).status in ("pass", "warn")
    path = NetworkPath.objects.get(audit=audit, source__name="w1", destination__name="srv")
    assert path.status == "fail" and "blocked at srv" in path.summary
    # and the server's page and its remediation script carry the firewall fix
    from django.contrib.auth import get_user_model

    from inventory.models import Node

    client.force_login(get_user_model().objects.create_superuser("icmp-admin", password="x"))
    srv = Node.objects.get(cluster__name="icmp", name="srv")
    page = client.get(f"/nodes/{srv.pk}/").content.decode()
    assert "iptables -I INPUT -p tcp --dport 80 -j ACCEPT" in page and "blocked at srv" in page
    script = client.get(f"/nodes/{srv.pk}/remediation.sh").content.decode()
    assert (
        "\n  iptables -C INPUT -p tcp --dport 80 -j ACCEPT 2>/dev/null || "
        "iptables -I INPUT -p tcp --dport 80 -j ACCEPT\n" in script
    )
    worker = Node.objects.get(cluster__name="icmp", name="w1")
    assert "iptables -I INPUT" not in client.get(f"/nodes/{worker.pk}/remediation.sh").content.decode()


def test_busy_port_fails_ports_available_but_path_passes(cluster_of, net):
    # given: a process already holds 10151 on w3
    server = subprocess.Popen(
        ["ip", "netns", "exec", net["w3"].namespace, "python3", "-m", "http.server", "10151"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if 10151 in _listening_ports(net["w3"]):
                break
            subprocess.run(["sleep", "0.1"])
        cluster_of("busy")
        # when
        audit = _audit("busy")
    finally:
        server.kill()
        server.wait()
    # then
    checks = checks_of(audit.pk, "w3")
    assert checks["ports.available"].status == "fail"
    assert checks["ports.available"].summary.startswith("10151 held by python3 (pid ")
    assert checks["network.server_to_worker"].status == "pass"
    path = NetworkPath.objects.get(audit=audit, check_id="network.server_to_worker", destination__name="w3")
    assert path.listener["busy"] == [10151] and path.outcomes["10151"][0] == "connected"


def test_ray_ports_only_with_distributed_vllm(cluster_of):
    cluster_of("ray", distributed_vllm=True)
    audit = _audit("ray")
    path = NetworkPath.objects.get(
        audit=audit, check_id="network.worker_to_worker", source__name="w1", destination__name="w2"
    )
    ports = {int(p) for p in path.outcomes}
    assert {6379, 10001, 8265, 52365, 10002, 19999} <= ports and 40064 in ports
    assert len([p for p in ports if 10002 <= p <= 19999]) == 32  # first, last and 30 between
    assert path.status == "pass"


def test_node_whose_audit_failed_does_not_stop_the_matrix(cluster_of, lab):
    # given: a fourth worker that cannot be logged into
    from inventory.models import Cluster, Credential, Node

    cluster_of("partial")
    broken = Credential(name="broken", kind="password")
    broken.secret = "wrong"
    broken.save()
    Node.objects.create(
        cluster=Cluster.objects.get(name="partial"),
        name="ghost",
        address=lab.nodes["w1"].address,
        ssh_port=2222,
        credential=broken,
    )
    # when
    audit = _audit("partial")
    # then
    ghost = checks_of(audit.pk, "ghost")
    assert ghost["ssh.connect"].status == "fail" and audit.node_audits.get(node__name="ghost").status == "error"
    assert checks_of(audit.pk, "w1")["network.server_to_worker"].status == "pass"
    w2w = checks_of(audit.pk, "w1")["network.worker_to_worker"]
    assert w2w.status == "skip" and "w1 -> ghost: not tested: ghost could not be audited: " in w2w.summary
    assert audit.node_audits.get(node__name="w1").status in ("pass", "warn")


def test_a_node_whose_own_listener_and_prober_fail_is_the_only_one_in_error(cluster_of, lab):
    # given: a fourth worker whose python3 is broken, so it can neither listen nor connect
    from inventory.models import Cluster

    broken = nodes.plain("badpy")
    broken.tools["python3"] = "echo 'python3: cannot run' >&2; exit 127"
    # over every python3 the node's sessions could find (in the node's own mount namespace only)
    broken.setup = [
        'for p in $(which -a python3 2>/dev/null) /usr/bin/python3; do mount --bind /usr/local/bin/python3 "$p" '
        "|| true; done"
    ]
    badpy = lab.nodes.get("badpy") or lab.add(broken)
    cluster_of("badpy")
    add_lab_nodes(Cluster.objects.get(name="badpy"), [badpy], lab_credential(lab))
    # when
    audit = _audit("badpy")
    # then: the broken node's own network checks are error, saying why
    own = checks_of(audit.pk, "badpy")
    assert own["network.worker_to_worker"].status == "error"
    assert "the connect test on badpy failed (exit status 127)" in own["network.worker_to_worker"].summary
    assert (
        "the listener on badpy failed: the listener exited before it was ready"
        in own["network.server_to_worker"].summary
    )
    assert audit.node_audits.get(node__name="badpy").status == "error"
    # and everyone else shows the paths to and from it as skip, naming it, and stays ready
    for name in ("srv", "w1", "w2", "w3"):
        assert audit.node_audits.get(node__name=name).status in ("pass", "warn"), name
    w2w = checks_of(audit.pk, "w1")["network.worker_to_worker"]
    assert w2w.status == "skip" and "w1 -> badpy: not tested: the listener on badpy failed" in w2w.summary
    assert "badpy -> w1: not tested: the connect test on badpy failed" in w2w.summary

"""The connectivity matrix's pure parts: planning, sampling, parsing the scripts' output, verdicts, firewalls."""

import shlex
import socket
import subprocess
import sys
import threading

from checks.connectivity import (
    S2W,
    W2S,
    W2W,
    Listener,
    MatrixNode,
    judge_path,
    not_tested,
    parse_listener_line,
    parse_prober_output,
    plan_paths,
    prober_command,
    prober_time_limit,
    sample_ports,
)
from checks.parsers.firewall import detect_firewall
from checks.parsers.firewall_rules import blocking_rule
from checks.remediation import open_ports
from checks.spec import NodeContext, PortRuleSpec, ProfileSpec

PORTS = (
    PortRuleSpec("server", 80, 80, "tcp", "UI"),
    PortRuleSpec("server", 443, 443, "tcp", "TLS", "tls"),
    PortRuleSpec("worker", 10150, 10151, "tcp", "worker"),
    PortRuleSpec("worker", 40064, 40095, "tcp", "distributed", worker_to_worker=True),
    PortRuleSpec("worker", 10002, 19999, "tcp", "Ray workers", "distributed_vllm", True),
)
PROFILE = ProfileSpec("t", port_rules=PORTS)
SRV, W1, W2 = (
    MatrixNode("srv", "server", "10.0.0.1"),
    MatrixNode("w1", "worker", "10.0.0.2"),
    MatrixNode("w2", "worker", "10.0.0.3", firewall="ufw"),
)


def test_sampling_keeps_small_ranges_whole_and_samples_large_ones():
    assert sample_ports(40000, 40127) == list(range(40000, 40128))
    ray = sample_ports(10002, 19999)
    assert len(ray) == 32 and ray[0] == 10002 and ray[-1] == 19999 and ray == sorted(set(ray))


def test_plan_follows_roles_and_options():
    plain = plan_paths([SRV, W1, W2], PROFILE, NodeContext("-", "worker"))
    kinds = sorted((p.check_id, p.source.name, p.destination.name) for p in plain)
    assert kinds == sorted(
        [
            (S2W, "srv", "w1"),
            (S2W, "srv", "w2"),
            (W2S, "w1", "srv"),
            (W2S, "w2", "srv"),
            (W2W, "w1", "w2"),
            (W2W, "w2", "w1"),
        ]
    )
    s2w = next(p for p in plain if p.check_id == S2W)
    assert s2w.ports == [10150, 10151, *range(40064, 40096)]
    assert next(p for p in plain if p.check_id == W2S).ports == [80]
    tls_ray = plan_paths([SRV, W1, W2], PROFILE, NodeContext("-", "worker", tls_enabled=True, distributed_vllm=True))
    assert next(p for p in tls_ray if p.check_id == W2S).ports == [80, 443]
    assert len(next(p for p in tls_ray if p.check_id == W2W).ports) == 32 + 32
    with_server = plan_paths([SRV, W1], PROFILE, NodeContext("-", "worker", server_runs_worker=True))
    assert {(p.source.name, p.destination.name) for p in with_server if p.check_id == W2W} == {
        ("w1", "srv"),
        ("srv", "w1"),
    }


def test_listener_and_prober_output_parsing():
    listener = Listener()
    lines = ["BOUND 10150", "BUSY 10151 EADDRINUSE", "DENIED 80 EACCES", "READY"]
    assert [parse_listener_line(line, listener) for line in lines] == [False, False, False, True]
    assert (listener.bound, listener.busy, listener.denied) == ({10150}, {10151}, {80: "EACCES"})
    assert parse_prober_output("10.0.0.2 10150 connected OK\n10.0.0.2 10151 timeout no answer in 3s\ngarbage\n") == {
        ("10.0.0.2", 10150): ("connected", "OK"),
        ("10.0.0.2", 10151): ("timed out", "no answer in 3s"),
    }
    # the grouped form for the ports of a host that connected; junk ports and out-of-range ones are skipped
    grouped = "10.0.0.3 * connected 80,10150,x,0,70000,1" + "9" * 400 + ",443\n10.0.0.3 10151 refused ECONNREFUSED\n"
    assert parse_prober_output(grouped) == {
        ("10.0.0.3", 80): ("connected", "OK"),
        ("10.0.0.3", 10150): ("connected", "OK"),
        ("10.0.0.3", 443): ("connected", "OK"),
        ("10.0.0.3", 10151): ("refused", "ECONNREFUSED"),
    }


def _plan():
    return next(
        p
        for p in plan_paths([SRV, W1, W2], PROFILE, NodeContext("-", "worker"))
        if p.check_id == S2W and p.destination.name == "w2"
    )


def test_verdicts():
    plan = _plan()
    listening = Listener(bound=set(plan.ports))
    all_ok = {p: ("connected", "OK") for p in plan.ports}
    assert judge_path(plan, all_ok, listening).status == "pass"
    dropped = {**all_ok, 10150: ("timed out", "no answer in 3s")}
    verdict = judge_path(plan, dropped, listening)
    assert (verdict.status, verdict.summary) == ("fail", "srv -> w2: 10150 timed out")
    assert verdict.remediation.startswith("On w2: Open TCP 10150 inbound in w2's ufw firewall.")
    assert verdict.commands == ("ufw allow 10150/tcp",)
    refused_no_listener = {**all_ok, 10151: ("refused", "ECONNREFUSED")}
    unproven = judge_path(
        plan, refused_no_listener, Listener(bound=set(plan.ports) - {10151}, denied={10151: "EACCES"})
    )
    assert unproven.status == "warn" and "not proof" in unproven.summary
    ranged = {**all_ok, **{p: ("refused", "ECONNREFUSED") for p in range(40064, 40096)}}
    assert judge_path(plan, ranged, listening).summary == "srv -> w2: 40064-40095 refused"


def test_firewall_detection_and_commands():
    assert detect_firewall({"firewalld": ("running", 0), "firewalld-rules": ("public (active)", 0)})[0] == "firewalld"
    assert detect_firewall({"ufw": ("Status: active\n", 0)})[0] == "ufw"
    assert (
        detect_firewall({"iptables": ("-P INPUT ACCEPT\n-A INPUT -p tcp --dport 10150 -j DROP\n", 0)})[0] == "iptables"
    )
    empty_nft = (
        "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n"
    )
    assert detect_firewall({"nftables": (empty_nft, 0), "iptables": ("-P INPUT ACCEPT\n", 0)})[0] == "none"
    assert (
        detect_firewall({"nftables": (empty_nft.replace("policy accept;", "policy accept;\n tcp dport 22 drop"), 0)})[0]
        == "nftables"
    )
    assert open_ports("firewalld", [(10150, 10151)]) == (
        "firewall-cmd --permanent --add-port=10150-10151/tcp",
        "firewall-cmd --reload",
    )
    assert open_ports("ufw", [(40000, 40063)]) == ("ufw allow 40000:40063/tcp",)
    assert open_ports("iptables", [(80, 80)]) == (
        "iptables -C INPUT -p tcp --dport 80 -j ACCEPT 2>/dev/null || iptables -I INPUT -p tcp --dport 80 -j ACCEPT",
    )
    assert open_ports("none", [(80, 80)]) == ()


def test_prober_script_runs_more_targets_than_its_window_on_loopback():
    # given: a server on loopback that accepts everything, and a port that nothing listens on
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    port = server.getsockname()[1]
    # the same target many times over: more than the window (512) and more than select() could watch (1024 fds)
    targets = [("127.0.0.1", port)] * 1500 + [("127.0.0.1", closed_port)]
    try:
        run = subprocess.run(
            shlex.split(prober_command(sys.executable, 3)),
            input="".join(f"{h} {p}\n" for h, p in targets) + "garbage\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        thread.join()
        server.close()
    # then: one line per distinct target, with the right outcome, and nothing on stderr
    assert run.returncode == 0 and run.stderr == ""
    assert parse_prober_output(run.stdout) == {
        ("127.0.0.1", port): ("connected", "OK"),
        ("127.0.0.1", closed_port): ("refused", "ECONNREFUSED"),
    }


def test_prober_time_limit_covers_every_target_silent_twice():
    assert prober_time_limit(10, 3) >= 2 * 3 + 30
    assert prober_time_limit(1600, 3) >= 2 * 4 * 3  # 4 windows of 512, each waiting out its time-out twice


# --- where a failing path is blocked, and whose readiness it counts against -------------------------------------

IPTABLES_SRV = (
    "iptables -S:\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
    "-A INPUT -p tcp -m multiport --dports 80,10161 -j REJECT --reject-with icmp-admin-prohibited\n"
)


def _w2s(server: MatrixNode, worker: MatrixNode = W1):
    return next(p for p in plan_paths([server, worker], PROFILE, NodeContext("-", "worker")) if p.check_id == W2S)


def test_icmp_error_from_the_destination_places_the_block_there():
    # given: the prober read the ICMP sender (srv's own address) from the socket's error queue
    plan = _w2s(SRV)
    verdict = judge_path(plan, {80: ("unreachable", "EHOSTUNREACH icmp 3/13 from 10.0.0.1")}, Listener(bound={80}))
    # then: the path fails; it counts against srv, with the fix there; w1 sees it blocked at srv, as a warn
    assert (verdict.status, verdict.blocked_at) == ("fail", "srv")
    assert verdict.summary == "w1 -> srv: 80 unreachable (blocked at srv)"
    assert verdict.ends["srv"].status == "fail" and verdict.ends["srv"].remediation.startswith("On srv: ")
    assert verdict.ends["w1"].status == "warn" and verdict.ends["w1"].remediation == ""
    assert "blocked at srv" in verdict.ends["w1"].summary
    assert "80: ICMP type 3 code 13 sent by 10.0.0.1 (srv)" in verdict.evidence


def test_own_firewall_rule_places_a_drop_at_that_node():
    # given: no ICMP (a DROP), but srv's own rules name the port
    server = MatrixNode("srv", "server", "10.0.0.1", firewall="iptables", firewall_evidence=IPTABLES_SRV)
    verdict = judge_path(_w2s(server), {80: ("timed out", "no answer in 3s, twice")}, Listener(bound={80}))
    assert verdict.blocked_at == "srv" and verdict.ends["w1"].status == "warn"
    assert verdict.ends["srv"].commands == (
        "iptables -C INPUT -p tcp --dport 80 -j ACCEPT 2>/dev/null || iptables -I INPUT -p tcp --dport 80 -j ACCEPT",
    )
    assert verdict.ends["w1"].commands == ()
    assert "srv's own firewall rule: -A INPUT -p tcp -m multiport --dports 80,10161 -j REJECT" in verdict.evidence


def test_source_output_rule_places_the_block_at_the_source():
    worker = MatrixNode(
        "w1", "worker", "10.0.0.2", firewall="iptables", firewall_evidence="-A OUTPUT -p tcp --dport 80 -j DROP"
    )
    verdict = judge_path(_w2s(SRV, worker), {80: ("timed out", "no answer in 3s")}, Listener(bound={80}))
    assert verdict.blocked_at == "w1"
    assert verdict.ends["w1"].status == "fail" and verdict.ends["w1"].remediation.startswith("On w1: its own firewall")
    assert verdict.ends["srv"].status == "warn"


def test_unknown_place_fails_both_ends():
    # given: a time-out with no rule on either end, and an ICMP error from a router between them
    plan = _w2s(SRV)
    for detail in ("no answer in 3s", "EHOSTUNREACH icmp 3/13 from 10.0.0.254"):
        verdict = judge_path(plan, {80: ("unreachable", detail)}, Listener(bound={80}))
        assert verdict.blocked_at == ""
        assert {name: end.status for name, end in verdict.ends.items()} == {"w1": "fail", "srv": "fail"}
        assert "security group between w1 and srv" in verdict.ends["w1"].remediation


def test_not_tested_is_skip_on_the_healthy_end_and_error_only_for_a_nodes_own_failure():
    plan = _w2s(SRV)
    peer_down = not_tested(plan, "srv could not be audited: key rejected", at_fault="srv", fault_is_own=False)
    assert peer_down.status == "skip"
    assert peer_down.ends["w1"].status == "skip"
    assert peer_down.ends["w1"].summary == "w1 -> srv: not tested: srv could not be audited: key rejected"
    prober = not_tested(plan, "connecting from w1 failed", at_fault="w1", fault_is_own=True)
    assert (prober.ends["w1"].status, prober.ends["srv"].status) == ("error", "skip")


def test_blocking_rule_reads_iptables_nft_and_ufw():
    assert blocking_rule(IPTABLES_SRV, 10161).startswith("-A INPUT")
    assert blocking_rule(IPTABLES_SRV, 443) == ""
    assert blocking_rule(IPTABLES_SRV, 80, outgoing=True) == ""
    assert blocking_rule("-A INPUT -p tcp --dport 40000:40063 -j DROP", 40010)
    assert blocking_rule("-A INPUT -p tcp --dport 40000:40063 -j ACCEPT", 40010) == ""
    assert blocking_rule("-A INPUT -p udp --dport 80 -j DROP", 80) == ""
    nft = (
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
        "\t\ttcp dport { 80, 10150-10151 } reject with icmpx admin-prohibited\n\t}\n"
        "\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n"
        "\t\ttcp dport 443 drop\n\t}\n}\n"
    )
    assert "reject" in blocking_rule(nft, 10151) and blocking_rule(nft, 443) == ""
    assert blocking_rule(nft, 443, outgoing=True) == "tcp dport 443 drop"
    ufw = "Status: active\n\nTo        Action    From\n--        ------    ----\n80/tcp    DENY IN   Anywhere\n"
    assert blocking_rule(ufw, 80).startswith("80/tcp") and blocking_rule(ufw, 81) == ""

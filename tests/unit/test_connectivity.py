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
    parse_listener_line,
    parse_prober_output,
    plan_paths,
    prober_command,
    prober_time_limit,
    sample_ports,
)
from checks.parsers.firewall import detect_firewall
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

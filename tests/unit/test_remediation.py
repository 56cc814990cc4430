"""Remediation is data: commands come only from templates, node text never reaches a command or a script line.

Hostile strings go into every node-derived value that reaches a result (os-release, uname, `ss -p` process names,
GPU model strings, docker info, tool output, node names, SSH errors) for every check id and OS family; the results'
commands must each be a template rendering with quoted values, and the script must carry node text only inside
comment lines. Every generated script must pass `sh -n` and shellcheck.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.catalog import CHECK_IDS, PASS, SKIP, RuleResult, evaluate_node
from checks.catalog.cluster import NodeIdentity, evaluate_cluster_deployment, evaluate_cluster_unique
from checks.connectivity import Listener, MatrixNode, judge_path, plan_paths
from checks.node_facts import build_facts
from checks.probe import Section
from checks.remediation import TEMPLATES, Remedy, package_manager
from checks.script import ScriptStep, comment_text, render_script
from checks.services.node import _connect_advice
from checks.spec import AcceleratorRuleSpec, NodeContext, PortRuleSpec, ProfileSpec
from checks.vendors import VENDORS

MARK = "pfmark"
TERMINATORS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"]
PAYLOADS = [
    f"`touch /tmp/{MARK}`",
    f"$(touch /tmp/{MARK})",
    f"; touch /tmp/{MARK};",
    f"| touch /tmp/{MARK}",
    f"&& touch /tmp/{MARK}",
    f"' ; touch /tmp/{MARK} ; '",
    f'" ; touch /tmp/{MARK} ; "',
    *(f"x{t}touch /tmp/{MARK}{t}" for t in TERMINATORS),
    f"{MARK}" + "A" * 5000,
]
# The pids the hostile `ss` lines print (real or forged in a process name): none may reach a command.
NODE_PIDS = re.compile(r"(?<![0-9])(4242|77|31337|31338|pid=)(?![0-9])")
hostile = st.builds(
    lambda prefix, payload, suffix: f"{prefix}{payload}{suffix}",
    st.text(alphabet=string.ascii_letters + "=+-@ \t", max_size=8),
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)

OS_RELEASES = {
    "apt-ubuntu": 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nUBUNTU_CODENAME=jammy\n',
    "apt-debian": 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    "dnf-rocky": 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n',
    "yum-centos7": 'ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n',
    "zypper-leap": 'ID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n',
    "unknown-arch": "ID=arch\n",
}
FIREWALL_SECTIONS = {
    "firewalld": {"firewalld": "running", "firewalld-rules": "public (active)"},
    "ufw": {"ufw": "Status: active\n"},
    "iptables": {"iptables": "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 10150 -j DROP\n"},
    "nftables": {"nftables": "table inet filter {\n chain input {\n  tcp dport 22 drop\n }\n}\n"},
    "none": {},
}
PCI_IDS = {key: spec.pci_vendor_id for key, spec in VENDORS.items()}
PROFILE = ProfileSpec(
    "gpustack-2.2",
    accelerator_rules={
        key: AcceleratorRuleSpec(
            key,
            f"{spec.label} driver",
            "https://example.invalid/driver",
            f"{spec.label} toolkit",
            "https://example.invalid/toolkit",
            {"hygon": "", "metax": "", "thead": ""}.get(key, key),
            "12.8" if key == "nvidia" else ("7.0" if key == "amd" else ""),
            "CUDA" if key == "nvidia" else ("ROCm" if key == "amd" else ""),
            # gpustack-2.2's NVIDIA floors: the driver and each GPU's compute capability (hostile model names)
            min_driver_version="570" if key == "nvidia" else "",
            min_compute_capability="6.0" if key == "nvidia" else "",
            warn_compute_capability="7.0" if key == "nvidia" else "",
        )
        for key, spec in VENDORS.items()
    },
    port_rules=(
        PortRuleSpec("server", 80, 80, "tcp", "UI"),
        PortRuleSpec("worker", 10150, 10151, "tcp", "worker"),
        PortRuleSpec("worker", 40000, 40063, "tcp", "inference"),
        PortRuleSpec("worker", 40064, 40095, "tcp", "distributed", worker_to_worker=True),
    ),
    check_reserved_ports=True,
    os_table_advisory=True,
    docker_desktop_fails_on_worker=True,
)

_WORD = r"(?:[A-Za-z0-9_@%+=:,./-]+|'[^']*'(?:\"'\"'[^']*')*)"
TEMPLATE_PATTERNS = [
    re.compile(
        "".join(
            re.escape(literal) + (f"{_WORD}(?: {_WORD})*" if field is not None else "")
            for literal, field, _, _ in string.Formatter().parse(template)
        )
    )
    for template in TEMPLATES.values()
]


def _section(name: str, text: str, rc: int | None = 0) -> Section:
    return Section(name, text, rc)


def _facts(*, os_release: str, evil: str, vendor: str, firewall: str, docker: str):
    """A worker with `vendor`'s device on the bus and its tool printing `evil`, no toolkit, no NTP, ports held."""
    pid_line = f'LISTEN 0 511 0.0.0.0:10150 0.0.0.0:* users:(("{evil}",pid=4242,fd=6))\n'
    sections = {
        "meta": _section("meta", f"uid=0\nuser={evil}"),
        "os-release": _section("os-release", os_release + f'PRETTY_NAME="{evil}"\nNAME="{evil}"\n'),
        "uname": _section("uname", f"Linux\n{evil}\n5.15.0"),
        "hostname": _section("hostname", evil),
        "pci": _section("pci", f"0000:00:09.0 {PCI_IDS[vendor]} 0x030200 0x2330\n" if vendor else ""),
        "tools": _section(
            "tools",
            (f"{VENDORS[vendor].tool} /usr/bin/x\n" if vendor else "") + "docker /usr/bin/docker\n" * bool(docker),
        ),
        "ss": _section(
            "ss",
            pid_line
            + f'LISTEN 0 5 0.0.0.0:40001 0.0.0.0:* users:(("{evil}",pid=77,fd=3))\n'
            # names that imitate ss's own fields, pointing at pid 1 and at another listener's pid
            + f'LISTEN 0 5 0.0.0.0:10151 0.0.0.0:* users:(("{evil}",pid=1,fd=3))",pid=31337,fd=3))\n'
            + f'LISTEN 0 5 [::]:40002 [::]:* users:(("x",pid=4242,fd=6),("{evil}",pid=31338,fd=3))\n',
        ),
        "port-range": _section("port-range", "32768\t60999"),
        "reserved-ports": _section("reserved-ports", ""),
        "done": _section("done", "ok"),
    }
    if vendor == "nvidia":
        rc = 1 if docker == "stopped" else 0  # a driver tool that fails, printing a payload
        sections["nvidia-smi"] = _section("nvidia-smi", f"| NVIDIA-SMI 550.54  Driver Version: {evil} |", rc)
        sections["nvidia-smi-query"] = _section("nvidia-smi-query", f'0, "{evil}", GPU-1, 81559 MiB, {evil}\n', rc)
        sections["nvidia-smi-cc"] = _section("nvidia-smi-cc", f"0, 5.2\n{evil}\n", rc)
    elif vendor:
        sections[VENDORS[vendor].sections[0]] = _section(VENDORS[vendor].sections[0], evil, 1)
    if docker == "stopped":
        sections["docker-info"] = _section("docker-info", f"Client:\n Version: {evil}\nServer:\nERROR: {evil}", 1)
    elif docker == "desktop":
        sections["docker-info"] = _section(
            "docker-info",
            f"Server:\n Server Version: 27.0\n Operating System: Docker Desktop {evil}\n Runtimes: {evil}",
        )
    for name, text in FIREWALL_SECTIONS[firewall].items():
        sections[name] = _section(name, text)
    # the field checks' inputs, each carrying the payload: proxies, addresses, identity, disk, containers, configs
    if docker == "desktop":
        sections["docker-info"].text += f"\n HTTPS Proxy: http://{evil}\n No Proxy: {evil}\n Cgroup Driver: systemd"
        sections["docker-info"].text += f"\n Docker Root Dir: /{evil}\n Default Runtime: {evil}"
    sections["docker-environment"] = _section("docker-environment", f"Environment=HTTPS_PROXY={evil} NO_PROXY={evil}")
    sections["environment"] = _section("environment", f'https_proxy="{evil}"\nno_proxy="{evil}"\n')
    sections["daemon-json"] = _section("daemon-json", json.dumps({"proxies": {"https-proxy": evil}}))
    sections["ip-addr"] = _section(
        "ip-addr",
        f"2: eth0    inet 10.0.0.5/24 scope global {evil}\\ x\n3: {evil}    inet 10.1.0.5/24 scope global {evil}\n",
    )
    sections["ip-route"] = _section("ip-route", f"10.0.0.1 dev {evil} src 10.1.0.5 {evil}")
    sections["machine-id"] = _section("machine-id", evil)
    sections["meminfo"] = _section("meminfo", "MemTotal: 1024 kB")
    sections["df"] = _section("df", f"Filesystem 1024-blocks Used Available Capacity Mounted on\n{evil} 9 1 1 1% /\n")
    sections["docker-ps"] = _section("docker-ps", f"gpustack|gpustack/gpustack:{evil}\nb|gpustack/gpustack:v1\n")
    sections["gpustack-inspect"] = _section(
        "gpustack-inspect", f"/gpustack|x|GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME={evil}"
    )
    sections["nvidia-runtime-config"] = _section(
        "nvidia-runtime-config", f'[nvidia-container-runtime]\nmode = "{evil}"'
    )
    sections["cdi-specs"] = _section(
        "cdi-specs", f"/var/run/cdi/{evil}.yaml"
    )  # no `dir` line: the directory is missing
    return build_facts(sections)


def _results(evil: str, family: str, vendor: str, firewall: str, docker: str) -> list[RuleResult]:
    facts = _facts(os_release=OS_RELEASES[family], evil=evil, vendor=vendor, firewall=firewall, docker=docker)
    context = NodeContext(
        evil,
        "worker",
        clock_offset_seconds=120.0,
        round_trip_seconds=0.01,
        address="10.0.0.2",
        server_address="10.0.0.1",
    )
    results = evaluate_node(facts, PROFILE, context)
    # cluster.unique: nodes with hostile names and hostnames sharing a hostname, a machine-id and a product UUID
    identities = [
        NodeIdentity(f"{evil}-{i}", hostname=evil, machine_id="0" * 31 + "1", product_uuid=evil) for i in range(2)
    ]
    results.extend(evaluate_cluster_unique(identities, PROFILE).values())
    tagged = [NodeIdentity(f"{evil}-{i}", gpustack_images=(f"gpustack/gpustack:{evil}{i}",)) for i in range(2)]
    results.extend(evaluate_cluster_deployment(tagged).values())
    results.append(RuleResult("ssh.connect", "fail", evil, evil, Remedy(_connect_advice(evil))))
    # the matrix: a blocked path whose destination runs `firewall`, with hostile node names
    nodes = [
        MatrixNode(f"{evil}-srv", "server", "10.0.0.1", firewall=firewall, firewall_evidence=evil),
        MatrixNode(f"{evil}-w1", "worker", "10.0.0.2", firewall=firewall, firewall_evidence=evil),
        MatrixNode(f"{evil}-w2", "worker", "10.0.0.3", firewall=firewall, firewall_evidence=evil),
    ]
    for plan in plan_paths(nodes, PROFILE, NodeContext("-", "worker")):
        outcomes = {port: ("timed out", evil) for port in plan.ports}
        verdict = judge_path(plan, outcomes, Listener(bound=set(plan.ports)))
        results.append(
            RuleResult(
                plan.check_id,
                verdict.status,
                verdict.summary,
                verdict.evidence,
                Remedy(verdict.remediation, verdict.commands),
            )
        )
    return results


def _script(results: list[RuleResult], title: str = "Preflight remediation") -> str:
    return render_script(
        title=title,
        steps=[
            ScriptStep(r.check_id, r.status, r.summary, str(r.remediation), tuple(r.commands))
            for r in results
            if r.status not in (PASS, SKIP)
        ],
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evil=hostile,
    family=st.sampled_from(sorted(OS_RELEASES)),
    vendor=st.sampled_from(["", *sorted(VENDORS)]),
    firewall=st.sampled_from(sorted(FIREWALL_SECTIONS)),
    docker=st.sampled_from(["", "stopped", "desktop"]),
)
def test_hostile_node_text_never_reaches_a_command(evil, family, vendor, firewall, docker):
    # given: a node whose every printed value carries a payload
    # when
    results = _results(evil, family, vendor, firewall, docker)
    script = _script(results, title=f"Preflight remediation for {evil}")
    # then: every command is a template rendering with quoted values, and carries no node text
    for result in results:
        for cmd in result.commands:
            assert any(p.fullmatch(cmd) for p in TEMPLATE_PATTERNS), cmd
            assert MARK not in cmd and evil not in cmd
            # and no pid the node printed: the script finds the process by its port when it runs
            assert not NODE_PIDS.search(cmd) and "kill 1" not in cmd, cmd
    # and the script holds node text only in comments, with no character that could end a comment early
    assert not any(t in script for t in TERMINATORS[1:])
    for line in script.split("\n"):
        if not line.startswith("#"):
            assert MARK not in line, line


def test_every_check_id_reaches_the_hostile_scenarios():
    # given / when: the scenarios of the property test, once per vendor
    seen = set()
    for vendor in ["", *VENDORS]:
        for docker in ("", "stopped", "desktop"):
            seen |= {r.check_id for r in _results(PAYLOADS[0], "apt-ubuntu", vendor, "ufw", docker) if r.status != PASS}
    # then: every check id of the catalogue had a non-passing result carrying hostile text
    missing = set(CHECK_IDS) - seen - {f"accelerator.{v}.version" for v in VENDORS if v not in ("nvidia", "amd")}
    assert missing == set()


@pytest.mark.parametrize("family", sorted(OS_RELEASES))
def test_commands_follow_the_nodes_package_manager(family):
    # given
    results = {r.check_id: r for r in _results("x", family, "nvidia", "firewalld", "")}
    manager = family.split("-")[0]
    # when
    docker, ntp, toolkit = (results[c].commands for c in ("container.docker", "time.ntp", "accelerator.nvidia.toolkit"))
    # then
    if manager == "unknown":
        assert docker == [] and ntp == [] and "Docker Engine" in results["container.docker"].remediation
        return
    installer = {"apt": "apt-get install", "dnf": "dnf install", "yum": "yum install", "zypper": "zypper"}[manager]
    assert any(installer in c and "chrony" in c for c in ntp)
    assert ntp[-1] == f"systemctl enable --now {'chrony' if manager == 'apt' else 'chronyd'}"
    assert docker[-1] == "systemctl enable --now docker" and any(installer in c for c in docker)
    assert toolkit[-2:] == ["nvidia-ctk runtime configure --runtime=docker", "systemctl restart docker"]
    assert any(installer in c and "nvidia-container-toolkit" in c for c in toolkit)
    assert not any(c.rstrip().endswith(".") or "PORT" in c or "SERVICE" in c for c in docker + ntp + toolkit)


def test_package_manager_from_facts():
    from checks.facts import OsRelease

    assert package_manager(OsRelease(id="centos", id_like=["rhel"], version_id="7")) == "yum"
    assert package_manager(OsRelease(id="rhel", version_id="8.9")) == "dnf"
    assert package_manager(OsRelease(id="amzn", version_id="2")) == "yum"
    assert package_manager(OsRelease(id="amzn", version_id="2023")) == "dnf"
    assert package_manager(OsRelease(id="linuxmint", id_like=["ubuntu"], version_id="21")) == "apt"


def test_ports_fix_names_the_ports_never_a_pid():
    # given: ports held by processes whose names are a payload or imitate ss's pid fields
    results = {r.check_id: r for r in _results('x",pid=1,fd=3))', "apt-ubuntu", "nvidia", "ufw", "")}
    # then: one fix per holder names only its ports; the process is found by its socket when the script runs
    commands = results["ports.available"].commands
    ports = [re.search(r"printf '%04X ' ([0-9 ]+)\)", c).group(1) for c in commands]
    assert ports == ["10150", "40001", "10151", "40002"]
    assert all(c.startswith('want=" $(printf ') and "/proc/net/tcp6" in c for c in commands)
    assert not any(NODE_PIDS.search(c) for c in commands)
    # and the explanation still names each process and the pid ss printed for it
    summary = results["ports.available"].summary
    assert '10151 held by x",pid=1,fd=3))",pid=1,fd=3)) (pid 31337)' in summary
    assert '10150 held by x",pid=1,fd=3)) (pid 4242)' in summary


def test_comment_text_removes_every_line_terminator():
    assert comment_text("a" + "".join(TERMINATORS) + "b") == "a b"
    assert "\n" not in comment_text("x\u2028y\u2029z\x85") and comment_text("x\u2028y") == "x y"


SCENARIOS = [
    (family, vendor, firewall, docker)
    for family in sorted(OS_RELEASES)
    for vendor in sorted(VENDORS)
    for firewall, docker in (("ufw", ""), ("firewalld", "stopped"), ("iptables", "desktop"), ("nftables", ""))
]


def _write_scripts(tmp_path: Path) -> list[Path]:
    paths = []
    for i, (family, vendor, firewall, docker) in enumerate(SCENARIOS):
        path = tmp_path / f"{i:03d}-{family}-{vendor}-{firewall}-{docker or 'absent'}.sh"
        path.write_text(_script(_results(PAYLOADS[i % len(PAYLOADS)], family, vendor, firewall, docker)))
        paths.append(path)
    return paths


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (scripts/test.sh installs it)")
        pytest.skip(f"{tool} is not installed (scripts/test.sh installs it)")
    return found


def test_every_generated_script_passes_sh_n_and_shellcheck(tmp_path):
    # given: a script for every OS family, vendor, firewall and Docker state
    shellcheck = _require("shellcheck")
    paths = _write_scripts(tmp_path)
    # when / then
    for path in paths:
        syntax = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert syntax.returncode == 0, (path.name, syntax.stderr)
    checked = subprocess.run([shellcheck, "-s", "sh", *map(str, paths)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout[-4000:]


def test_dry_run_prints_every_command_and_runs_none(tmp_path):
    # given: stand-ins for every program a command could call, each leaving a trace if it runs
    results = _results("x", "apt-ubuntu", "nvidia", "iptables", "")
    script = tmp_path / "fix.sh"
    script.write_text(_script(results))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    trace = tmp_path / "ran"
    for name in (
        "apt-get",
        "curl",
        "gpg",
        "install",
        "chmod",
        "systemctl",
        "nvidia-ctk",
        "kill",
        "ss",
        "sysctl",
        "iptables",
        "chronyc",
        "sed",
        "timedatectl",
    ):
        (stubs / name).write_text(f"#!/bin/sh\necho {name} >> {trace}\n")
        (stubs / name).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path)}
    # when
    run = subprocess.run(["sh", str(script), "--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path)
    # then
    expected = [f"+ {c}" for r in results if r.status not in (PASS, SKIP) for c in r.commands]
    assert run.returncode == 0, run.stderr
    assert [line for line in run.stdout.splitlines() if line.startswith("+ ")] == expected
    assert not trace.exists()
    bad = subprocess.run(["sh", str(script), "--force"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_script_refuses_to_run_as_a_normal_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    script = _script(_results("x", "apt-ubuntu", "nvidia", "ufw", ""))
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s"],
        input=script,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert run.returncode == 1 and "run this script as root" in run.stderr and "+ " not in run.stdout


def test_command_renderer_quotes_and_refuses_unknown_words():
    from checks.remediation import command

    assert command("write", line="a'b", path="/etc/sysctl.d/90-gpustack.conf") == (
        "printf '%s\\n' " + shlex.quote("a'b") + " > /etc/sysctl.d/90-gpustack.conf"
    )
    with pytest.raises(ValueError):
        command("apt.install", packages=("chrony; rm -rf /",))
    with pytest.raises(ValueError):
        command("service.enable", service="x")
    with pytest.raises(ValueError):
        command("service.enable")


VENDOR_SECTIONS = {
    "nvidia-smi": ("nvidia", "nvidia-smi"),
    "npu-smi": ("ascend", "npu-smi"),
    "amd-smi": ("amd", "amd-smi"),
    "rocm-smi": ("amd", "rocm-smi"),
    "hy-smi": ("hygon", "hy-smi"),
    "ixsmi": ("iluvatar", "ixsmi"),
    "mx-smi": ("metax", "mx-smi"),
    "mthreads-gmi": ("mthreads", "mthreads-gmi"),
    "cnmon": ("cambricon", "cnmon"),
}
HOST_SECTIONS = {"docker-info": "docker-info", "chrony": "chronyc-tracking", "timedatectl": "timedatectl", "ss": "ss"}


def _recorded_outputs() -> list[tuple[str, Path]]:
    from tests.conftest import REPO

    found = []
    for folder in sorted({*VENDOR_SECTIONS, *HOST_SECTIONS}):
        base = REPO / "tests" / "fixtures" / folder
        found.extend((folder, path) for path in sorted(base.glob("*")) if path.is_file())
    return found


def _fixture_scenario(folder: str, path: Path, family: str) -> list[RuleResult]:
    """A worker whose `folder` tool printed the recorded `path`; everything else missing, so every fix applies."""
    text = path.read_text(errors="replace")
    sections = {
        "meta": _section("meta", "uid=0\nuser=root"),
        "os-release": _section("os-release", OS_RELEASES[family]),
        "uname": _section("uname", "Linux\nx86_64\n5.15.0"),
        "pci": _section("pci", ""),
        "tools": _section("tools", ""),
        "ss": _section("ss", 'LISTEN 0 5 0.0.0.0:10150 0.0.0.0:* users:(("gpustack",pid=9,fd=3))\n'),
        "port-range": _section("port-range", "32768\t60999"),
        "reserved-ports": _section("reserved-ports", "40000-40010"),
        "iptables": _section("iptables", "-P INPUT DROP\n"),
    }
    tools = []
    if folder in VENDOR_SECTIONS:
        vendor, section = VENDOR_SECTIONS[folder]
        sections["pci"] = _section("pci", f"0000:00:09.0 {PCI_IDS[vendor]} 0x030200 0x2330\n")
        tools.append(f"{folder if folder != 'rocm-smi' else 'rocm-smi'} /usr/bin/{folder}")
        name = "nvidia-smi-query" if folder == "nvidia-smi" and path.suffix == ".csv" else section
        sections[name] = _section(name, text)
    else:
        sections[HOST_SECTIONS[folder]] = _section(HOST_SECTIONS[folder], text)
        tools.append({"docker-info": "docker", "chrony": "chronyc"}.get(folder, folder) + " /usr/bin/x")
    sections["tools"] = _section("tools", "\n".join(tools) + "\n")
    facts = build_facts(sections)
    return evaluate_node(facts, PROFILE, NodeContext("w", "worker", clock_offset_seconds=45.0))


def test_scripts_for_every_recorded_output_and_family_pass_shellcheck(tmp_path):
    # given: every recorded tool output the parsers read, on a node of every OS family
    shellcheck = _require("shellcheck")
    outputs = _recorded_outputs()
    assert len(outputs) >= 40, "the recorded outputs were not found"
    paths = []
    for i, (folder, path) in enumerate(outputs):
        for family in sorted(OS_RELEASES):
            results = _fixture_scenario(folder, path, family)
            assert any(r.commands for r in results) or family == "unknown-arch"
            script = tmp_path / f"{i:03d}-{family}.sh"
            script.write_text(_script(results, title=f"{folder}/{path.name} on {family}"))
            paths.append(script)
    # when
    checked = subprocess.run([shellcheck, "-s", "sh", *map(str, paths)], capture_output=True, text=True)
    # then
    assert checked.returncode == 0, checked.stdout[-4000:]
    for script in paths:
        assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0, script.name

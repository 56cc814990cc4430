"""Real sshd test hosts, one per Linux network namespace, joined by a bridge on the test runner's side (DESIGN.md).

Each node runs its own sshd inside its own network namespace, mount namespace (`unshare -m`) and UTS namespace (its
hostname is its name), where its own /etc/machine-id, a fake /etc/os-release, a fake PCI tree (over
/sys/bus/pci/devices), stand-in vendor tools (over /usr/local/bin, each printing a recorded real output), a freshly
installed node's root home (/etc/skel's files over /root, so the test runner's own shell set-up never runs in a
node's logins) and its own firewall and listeners make each node what a test needs. Addresses come from one /24 that
this lab picks and owns; nothing else is ever contacted. `Lab.close()` removes everything.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def lab_available() -> str | None:
    """None when this machine can run the lab, else the reason it cannot."""
    if os.geteuid() != 0:
        return "test hosts need root (network and mount namespaces)"
    for tool in ("ip", "unshare", "ssh-keygen", "openssl"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not Path("/usr/sbin/sshd").exists():
        return "openssh-server is not installed"
    probe = f"pfchk{secrets.token_hex(2)}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create network namespaces: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, **kwargs)


@dataclass
class NodeSpec:
    name: str
    os_release: str
    tools: dict[str, str] = field(default_factory=dict)  # name -> sh script body (after the #! line)
    pci: list[tuple[str, str, str, str]] = field(default_factory=list)  # (address, vendor, class, device)
    hide: list[str] = field(default_factory=list)  # directories covered by an empty tmpfs
    root_password: str | None = None
    authorized_key: str | None = None  # default: the lab's client key
    setup: list[str] = field(default_factory=list)  # shell run inside the node's namespaces before sshd starts
    sshd_options: list[str] = field(default_factory=list)  # extra sshd_config lines, e.g. "ForceCommand sleep 3600"
    machine_id: str = ""  # /etc/machine-id of the node; by default its own random one (nodes cloned from one image
    # share it: give two nodes the same value)


@dataclass
class LabNode:
    spec: NodeSpec
    namespace: str
    address: str
    directory: Path
    host_link: str = ""
    process: subprocess.Popen | None = None

    @property
    def sshd_log(self) -> Path:
        return self.directory / "sshd.log"

    def exec(self, command: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run a command in the node's network namespace (not its mount namespace)."""
        return _run("ip", "netns", "exec", self.namespace, "sh", "-c", command, check=False, timeout=timeout)


NEIGHBOUR = Path("/proc/sys/net/ipv4/neigh/default")


class Lab:
    def __init__(self, *, wide: bool = False) -> None:
        """`wide`: a /16 of its own (10.100-199.0.0/16) for benches of more than 240 hosts; the default, a /24 in
        10.231.0.0/16 (the test settings' target networks), holds up to 240."""
        self.id = secrets.token_hex(2)
        self.wide = wide
        self.subnet = f"10.{random.randint(100, 199)}" if wide else f"10.231.{random.randint(1, 250)}"
        self.prefix = 16 if wide else 24
        self.network = f"{self.subnet}.0.0/16" if wide else f"{self.subnet}.0/24"
        self.bridge = f"pfb{self.id}"
        self.root = Path(tempfile.mkdtemp(prefix=f"preflight-lab-{self.id}-"))
        self.nodes: dict[str, LabNode] = {}
        self._next = 10
        self._neighbour_saved: dict[str, str] = {}
        key = self.root / "client_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "preflight-lab", "-f", str(key))
        self.client_key = key.read_text()
        self.client_public_key = (self.root / "client_ed25519.pub").read_text().strip()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self._address(-9)}/{self.prefix}", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    # --- nodes ------------------------------------------------------------------------------------------------

    def _address(self, index: int) -> str:
        """The address of the node at `index` (from 10; -9 is the bridge's own, .1)."""
        if not self.wide:
            return f"{self.subnet}.{index + 10 if index < 0 else index}"
        index += 9
        return f"{self.subnet}.{index // 250}.{index % 250 + 1}"

    def _grow_neighbour_table(self, hosts: int) -> None:
        """The ARP cache is one table for all namespaces (hard limit gc_thresh3, 1024 by default), and in a full
        mesh every host learns every other: 50 hosts need 2,500 entries. Past the limit the kernel drops packets
        ("neighbor table overflow"), which reads as connect time-outs. Raised as the lab grows; restored on close."""
        needed = (hosts + 1) ** 2 + 1024
        for name, value in (("gc_thresh2", needed), ("gc_thresh3", 2 * needed)):
            path = NEIGHBOUR / name
            current = path.read_text().strip()
            self._neighbour_saved.setdefault(name, current)
            if int(current) < value:
                path.write_text(str(value))

    def add(self, spec: NodeSpec) -> LabNode:
        if spec.name in self.nodes:  # the lab is shared by a session: two tests must not pick the same name
            raise ValueError(f"the lab already has a node named {spec.name!r}; pick another name in this test")
        index = self._next
        self._next += 1
        self._grow_neighbour_table(len(self.nodes) + 1)
        namespace = f"pf{self.id}n{index}"
        host_side = f"pf{self.id}h{index}"
        node = LabNode(spec, namespace, self._address(index), self.root / spec.name, host_link=host_side)
        self.nodes[spec.name] = node
        self._write_node_files(node)
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", host_side, "type", "veth", "peer", "name", f"pf{self.id}p{index}")
        _run("ip", "link", "set", f"pf{self.id}p{index}", "netns", namespace)
        _run("ip", "link", "set", host_side, "master", self.bridge)
        _run("ip", "link", "set", host_side, "up")
        inside = f"""
            ip link set lo up
            ip link set pf{self.id}p{index} name eth0
            ip addr add {node.address}/{self.prefix} dev eth0
            ip link set eth0 up
        """
        _run("ip", "netns", "exec", namespace, "sh", "-c", inside)
        self.start(node)
        return node

    def _plugged(self, name: str, index: int) -> LabNode:
        """A namespace on the lab's bridge with the address of slot `index` on eth0, and nothing running in it."""
        namespace, host_side = f"pf{self.id}n{index}", f"pf{self.id}h{index}"
        node = LabNode(NodeSpec(name, ""), namespace, self._address(index), self.root / name, host_link=host_side)
        node.directory.mkdir(parents=True)
        self.nodes[name] = node
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", host_side, "type", "veth", "peer", "name", f"pf{self.id}p{index}")
        _run("ip", "link", "set", f"pf{self.id}p{index}", "netns", namespace)
        _run("ip", "link", "set", host_side, "master", self.bridge)
        _run("ip", "link", "set", host_side, "up")
        _run(
            "ip",
            "netns",
            "exec",
            namespace,
            "sh",
            "-c",
            f"ip link set lo up; ip link set pf{self.id}p{index} name eth0; "
            f"ip addr add {node.address}/{self.prefix} dev eth0; ip link set eth0 up",
        )
        return node

    def add_raw(self, name: str, server_code: str) -> LabNode:
        """A node whose port 22 is not sshd but `server_code` (python3, gets the address as argv[1])."""
        index = self._next
        self._next += 1
        node = self._plugged(name, index)
        log = open(node.sshd_log, "ab")
        node.process = subprocess.Popen(
            ["ip", "netns", "exec", node.namespace, "python3", "-c", server_code, node.address],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = _run("ip", "netns", "exec", node.namespace, "ss", "-Hltn", check=False).stdout
            if ":22 " in probe:
                return node
            time.sleep(0.1)
        raise RuntimeError(f"raw server {name} did not listen: {node.sshd_log.read_text()[-2000:]}")

    def add_machine(self, name: str) -> LabNode:
        """A bare namespace on the lab's bridge, with an address and no sshd: a machine of the portal's own (a
        Celery worker machine, say) that runs whatever a test starts in it with `ip netns exec`."""
        if name in self.nodes:
            raise ValueError(f"the lab already has a node named {name!r}; pick another name in this test")
        index = self._next
        self._next += 1
        self._grow_neighbour_table(len(self.nodes) + 1)
        node = self._plugged(name, index)
        return node

    def remove(self, node: LabNode) -> None:
        """Take one node (or machine) out of the lab before it closes: every process in its namespace is killed,
        its namespace and link deleted."""
        self.stop(node)
        _run("ip", "link", "del", node.host_link, check=False)
        _run("ip", "netns", "del", node.namespace, check=False)
        self.nodes.pop(node.spec.name, None)
        shutil.rmtree(node.directory, ignore_errors=True)

    def _write_node_files(self, node: LabNode) -> None:
        spec, d = node.spec, node.directory
        (d / "bin").mkdir(parents=True)
        (d / "pci").mkdir()
        # root's home as on a freshly installed node: the distribution's skeleton shell files, not the test
        # runner's own /root (its ~/.bashrc may run pyenv or other set-up on every SSH command, and put shims
        # before /usr/bin/python3), which no node under audit has.
        (d / "home").mkdir(mode=0o700)
        for skeleton in Path("/etc/skel").glob(".*"):
            if skeleton.is_file():
                shutil.copy(skeleton, d / "home" / skeleton.name)
        (d / "os-release").write_text(spec.os_release)
        (d / "machine-id").write_text((spec.machine_id or secrets.token_hex(16)) + "\n")
        for name, body in spec.tools.items():
            tool = d / "bin" / name
            tool.write_text("#!/bin/sh\n" + body + "\n")
            tool.chmod(0o755)
        for address, vendor, klass, device in spec.pci:
            entry = d / "pci" / address
            entry.mkdir()
            (entry / "vendor").write_text(vendor + "\n")
            (entry / "class").write_text(klass + "\n")
            (entry / "device").write_text(device + "\n")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_ed25519"))
        (d / "authorized_keys").write_text((spec.authorized_key or self.client_public_key) + "\n")
        (d / "authorized_keys").chmod(0o600)
        password_auth = "yes" if spec.root_password else "no"
        (d / "sshd_config").write_text(
            f"ListenAddress {node.address}\nPort 22\nHostKey {d / 'host_ed25519'}\nPermitRootLogin yes\n"
            f"PasswordAuthentication {password_auth}\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nUsePAM no\nStrictModes no\nLogLevel DEBUG1\n"
            "PidFile none\nMaxStartups 200\nMaxSessions 50\nUseDNS no\nPrintMotd no\n"
            + "".join(f"{option}\n" for option in spec.sshd_options)
        )
        if spec.root_password:
            digest = _run("openssl", "passwd", "-6", spec.root_password).stdout.strip()
            lines = Path("/etc/shadow").read_text().splitlines()
            lines = [
                f"root:{digest}:" + ":".join(line.split(":")[2:]) if line.startswith("root:") else line
                for line in lines
            ]
            (d / "shadow").write_text("\n".join(lines) + "\n")
            (d / "shadow").chmod(0o600)

    def start(self, node: LabNode) -> None:
        d, spec = node.directory, node.spec
        mounts = [
            f"mount --bind {d / 'os-release'} /etc/os-release",
            f"mount --bind {d / 'machine-id'} /etc/machine-id",
            f"hostname {shlex.quote(spec.name)}",  # its own UTS namespace: each node has its own hostname
            f"mount --bind {d / 'bin'} /usr/local/bin",
            f"mount --bind {d / 'pci'} /sys/bus/pci/devices",
            f"mount --bind {d / 'home'} /root",
            *(f"mount -t tmpfs preflight-hidden {shlex.quote(path)}" for path in spec.hide),
        ]
        if spec.root_password:
            mounts.append(f"mount --bind {d / 'shadow'} /etc/shadow")
        script = "set -e\n" + "\n".join(mounts + spec.setup) + f"\nexec /usr/sbin/sshd -D -e -f {d / 'sshd_config'}"
        log = open(node.sshd_log, "ab")
        node.process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                node.namespace,
                "unshare",
                "-m",
                "-u",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"sshd for {spec.name} exited: {node.sshd_log.read_text()[-2000:]}")
            try:
                with socket.create_connection((node.address, 22), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd for {spec.name} did not listen on {node.address}:22")

    def stop(self, node: LabNode) -> None:
        if node.process and node.process.poll() is None:
            try:
                os.killpg(node.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.process.wait(timeout=10)
        # Anything the node's sessions left behind (a hung probe) dies with it.
        pids = _run("ip", "netns", "pids", node.namespace, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def replace_host_key(self, node: LabNode) -> None:
        """The node is 'reinstalled': a new host key, sshd restarted."""
        self.stop(node)
        for suffix in ("", ".pub"):
            (node.directory / f"host_ed25519{suffix}").unlink()
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(node.directory / "host_ed25519"))
        self.start(node)

    def accepted_logins(self, node: LabNode) -> int:
        return len(re.findall(r"Accepted (?:publickey|password) for", node.sshd_log.read_text(errors="replace")))

    def connections(self, node: LabNode) -> int:
        return node.sshd_log.read_text(errors="replace").count("Connection from ")

    def close(self) -> None:
        for node in self.nodes.values():
            self.stop(node)
            _run("ip", "link", "del", node.host_link, check=False)
            _run("ip", "netns", "del", node.namespace, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        for name, value in self._neighbour_saved.items():
            (NEIGHBOUR / name).write_text(value)
        shutil.rmtree(self.root, ignore_errors=True)
        # The kernel tears namespaces down asynchronously; give it a moment before anyone checks.
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)

    def leftovers(self) -> list[str]:
        """Namespaces or links of this lab still present (for the clean-up test)."""
        names = _run("ip", "netns", "list", check=False).stdout + _run("ip", "-o", "link", check=False).stdout
        return [line for line in names.splitlines() if f"pf{self.id}" in line or self.bridge in line]


def execs(node: LabNode) -> int:
    """Commands the node's sshd was asked to run (sshd logs each channel `exec` request at DEBUG1)."""
    return node.sshd_log.read_text(errors="replace").count("request exec")

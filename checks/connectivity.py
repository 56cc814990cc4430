"""The connectivity matrix, pure parts: which ports each path needs, the listener and prober scripts, and verdicts.

Before GPUStack is installed nothing listens on its ports, and a refused connect cannot tell "no listener" from a
firewall that rejects. So each destination briefly runs a listener on its free required ports, and each source
connects to all of its targets in parallel from one command. Services do the I/O; this module only plans and judges.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace

from .catalog.ports import compact, label
from .parsers.firewall_rules import blocking_rule
from .remediation import Remedy, fix_open_ports
from .spec import NodeContext, PortRuleSpec, ProfileSpec

WHOLE_RANGE_LIMIT = 128
SAMPLE_BETWEEN = 30
S2W, W2S, W2W = "network.server_to_worker", "network.worker_to_server", "network.worker_to_worker"

# Runs on a destination: binds the given free ports, reports, accepts-and-closes until its stdin closes or its own
# deadline passes, so it never outlives the audit even if the SSH connection is lost. SO_REUSEPORT: chunks of the
# matrix that run at once may each need a listener on one node (the server): each binds the port beside the other,
# so one chunk closing its listener leaves the other's listening. A program that holds the port without
# SO_REUSEPORT (GPUStack itself) still makes the bind fail: BUSY, as before.
LISTENER_SCRIPT = r"""
import errno, os, select, socket, sys, time
deadline = time.time() + float(sys.argv[1])
socks = []
for port in map(int, sys.argv[2:]):
    s = None
    try:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        except OSError:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):  # another chunk's listener may hold the port: both listen, both accept
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("", port))
        s.listen(1024)
        s.setblocking(False)
        socks.append(s)
        print("BOUND %d" % port)
    except OSError as e:
        if s is not None:
            s.close()
        kind = "BUSY" if e.errno == errno.EADDRINUSE else "DENIED"
        print("%s %d %s" % (kind, port, errno.errorcode.get(e.errno, str(e.errno))))
print("READY", flush=True)
sys.stdout.flush()
stdin = sys.stdin.fileno()
while time.time() < deadline:
    ready, _, _ = select.select(socks + [stdin], [], [], 0.5)
    for r in ready:
        if r == stdin:
            if not os.read(stdin, 1024):
                sys.exit(0)
        else:
            for _ in range(256):  # drain what queued up since the last select, not one per wake-up
                try:
                    conn, _ = r.accept()
                except OSError:
                    break
                conn.close()
"""

# Runs on a source: reads "host port" lines and connects to all of them, printing one outcome line each. Connects
# start paced (PACE per 5 ms, at most WINDOW in flight), each with its own deadline: a burst of thousands of SYNs at
# once overflows queues on the way (a switch, a firewall, the kernel's backlog) and reads as false time-outs. Targets
# that time out are tried once more, so only a port that stays silent twice is reported as "timeout".
# Each socket asks for ICMP errors on its error queue (IP_RECVERR): a connect ended by an ICMP error then reports
# who sent it ("icmp 3/13 from 10.0.0.5"), which tells whether the destination itself or a hop between rejected it.
PROBER_SCRIPT = r"""
import errno, select, socket, struct, sys, time
timeout = float(sys.argv[1])
WINDOW = int(sys.argv[2]) if len(sys.argv) > 2 else 512
PACE = 32
LINGER = struct.pack("ii", 1, 0)
targets = [tuple(line.split()[:2]) for line in sys.stdin.read().splitlines() if len(line.split()) >= 2]
NAMES = {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable",
         errno.ETIMEDOUT: "timeout", errno.EHOSTDOWN: "unreachable", errno.EACCES: "unreachable"}

def recverr(s, v6):
    try:
        s.setsockopt(41 if v6 else 0, 25 if v6 else 11, 1)  # IPV6_RECVERR / IP_RECVERR (Linux)
    except (OSError, AttributeError):
        pass

def sender(s):
    try:
        _, ancillary, _, _ = s.recvmsg(1, 512, socket.MSG_ERRQUEUE)
    except (OSError, AttributeError, ValueError):
        return ""
    for _, _, data in ancillary:
        if len(data) < 24 or data[4] not in (2, 3):  # SO_EE_ORIGIN_ICMP / ICMP6
            continue
        family = struct.unpack("=H", data[16:18])[0]
        if family == socket.AF_INET:
            address = socket.inet_ntop(socket.AF_INET, data[20:24])
        elif family == socket.AF_INET6 and len(data) >= 40:
            address = socket.inet_ntop(socket.AF_INET6, data[24:40])
        else:
            continue
        return " icmp %d/%d from %s" % (data[5], data[6], address)
    return ""

def failed(s, code):
    return (NAMES.get(code, "error"), errno.errorcode.get(code, str(code)) + sender(s))

def attempt(todo):
    # pending keeps start order, so its first entry always has the earliest deadline
    results, pending, poller, i = {}, {}, select.poll(), 0
    while i < len(todo) or pending:
        now = time.time()
        started = 0
        while i < len(todo) and len(pending) < WINDOW and started < PACE:
            host, port = todo[i]
            i += 1
            started += 1
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            recverr(s, ":" in host)
            s.setblocking(False)
            code = s.connect_ex((host, int(port)))
            if code in (0, errno.EINPROGRESS):
                pending[s.fileno()] = (s, host, port, now + timeout)
                poller.register(s, select.POLLOUT)
            else:
                results[(host, port)] = failed(s, code)
                s.close()
        more = i < len(todo) and len(pending) < WINDOW
        wait = 0.005 if more else max(0.0, next(iter(pending.values()))[3] - now) if pending else 0
        for fd, _ in poller.poll(wait * 1000):
            s, host, port, _ = pending.pop(fd)
            poller.unregister(fd)
            code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            results[(host, port)] = ("connected", "OK") if code == 0 else failed(s, code)
            if code == 0:  # close with a reset: no FIN exchange, no TIME_WAIT left behind on either end
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER)
            s.close()
        now = time.time()
        while pending and next(iter(pending.values()))[3] <= now:
            fd = next(iter(pending))
            s, host, port, _ = pending.pop(fd)
            poller.unregister(fd)
            results[(host, port)] = ("timeout", "no answer in %gs" % timeout)
            s.close()
    return results

results = attempt(targets)
again = [t for t in targets if results.get(t, ("",))[0] == "timeout"]
if again:
    for target, outcome in attempt(again).items():
        results[target] = outcome if outcome[0] != "timeout" else ("timeout", "no answer in %gs, twice" % timeout)
connected = {}
for (host, port), (outcome, detail) in results.items():
    if outcome == "connected":
        connected.setdefault(host, []).append(port)
    else:
        print(host, port, outcome, detail)
for host, ports in connected.items():  # one line per host for the usual case: a sixth of the bytes to carry and read
    print(host, "*", "connected", ",".join(ports))
sys.stdout.flush()
"""


def listener_command(python: str, ports: list[int], lifetime: float) -> str:
    return " ".join(
        [
            shlex.quote(python or "python3"),
            "-c",
            shlex.quote(LISTENER_SCRIPT),
            str(int(lifetime)),
            *(str(int(p)) for p in ports),
        ]
    )


PROBER_WINDOW = 512  # connects in flight per source: under the usual limit of 1024 open files


def prober_command(python: str, timeout: float) -> str:
    return " ".join(
        [shlex.quote(python or "python3"), "-c", shlex.quote(PROBER_SCRIPT), f"{float(timeout):g}", str(PROBER_WINDOW)]
    )


def prober_time_limit(targets: int, timeout: float) -> float:
    """The longest a prober can legitimately take: every target silent, twice, WINDOW at a time."""
    rounds = max(1, -(-targets // PROBER_WINDOW))
    return 2 * rounds * timeout + targets * 0.005 / 32 * 2 + 30


def matrix_budget_seconds(
    *, nodes: int, paths: int, concurrency: int, connect_timeout: float, port_timeout: float
) -> float:
    """The longest a whole matrix may take: each wave of `concurrency` nodes logs in and starts its listener,
    then each wave of sources probes (every port silent, twice, in the worst case), plus time per path to plan,
    judge and record. Grows with the number of paths."""
    waves = max(1, -(-nodes // max(1, concurrency)))
    per_source = -(-paths // max(1, nodes))
    return 60 + waves * (connect_timeout + 15) + waves * prober_time_limit(per_source * 4, port_timeout) + paths * 0.02


def sample_ports(first: int, last: int) -> list[int]:
    """Ranges up to 128 ports whole; larger ones: first, last and 30 evenly spread between (Ray's 10002-19999)."""
    if last - first + 1 <= WHOLE_RANGE_LIMIT:
        return list(range(first, last + 1))
    step = (last - first) / (SAMPLE_BETWEEN + 1)
    return sorted({first, last, *(round(first + step * i) for i in range(1, SAMPLE_BETWEEN + 1))})


@dataclass(frozen=True)
class MatrixNode:
    name: str
    role: str
    address: str
    python: str = ""
    firewall: str = "none"
    firewall_evidence: str = ""
    problem: str = ""  # why this node cannot take part, empty when usable
    # False: its audit did not complete (its own results say why). A problem on an audited node (no python3) is
    # its own failure to listen or connect.
    audited: bool = True
    group: str = ""  # its network group (rack, subnet, switch): a small group gets its full mesh in a sampled plan
    order: int = 0  # its place among the peers (the node's id): the sampled rotation goes in this order


@dataclass
class PathPlan:
    check_id: str
    source: MatrixNode
    destination: MatrixNode
    rules: list[PortRuleSpec]
    not_needed: str = ""  # why this cluster's options need no such path (tunnel mode): `skip`, never probed

    @property
    def ports(self) -> list[int]:
        return sorted({p for rule in self.rules for p in sample_ports(rule.first_port, rule.last_port)})


def path_rules(profile: ProfileSpec, context: NodeContext, *, role: str, check_id: str) -> list[PortRuleSpec]:
    """The TCP port rules of `role` that a path of `check_id` must prove, under the cluster options of `context`.

    Server to worker: rules reached by peers, and the inference range (`direct_mode`) only in direct proxy mode.
    Worker to server: rules reached by peers. Worker to worker: rules marked worker_to_worker, whatever their reach.
    A rule reached by no other node (loopback, or used on the node itself) is never path-checked."""
    options = replace(context, name="-", role=role, server_runs_worker=False)
    wanted = {"peers"} | ({"direct_mode"} if check_id == S2W and context.proxy_mode == "direct" else set())
    return [
        r
        for r in profile.port_rules
        if options.applies(r) and r.protocol == "tcp" and (r.worker_to_worker if check_id == W2W else r.reach in wanted)
    ]


# Connectivity plans (issue 24). `full` proves every worker pair in every audit: the work grows with the square of
# the cluster. `sampled` proves every server<->worker path and, per worker, k peers that rotate from audit to audit.
# `auto` is `full` up to SAMPLED_ABOVE peers (workers, plus the server when it runs a worker) and `sampled` above.
SAMPLED_ABOVE = 50
FULL, SAMPLED, AUTO = "full", "sampled", "auto"


@dataclass(frozen=True)
class Sampling:
    """How to choose worker-to-worker paths. `round` is the audit's number in the cluster's sequence of matrices
    (0, 1, 2, ...): consecutive rounds rotate the peers. `group_limit`: a network group of at most this many peers
    gets its full mesh in every audit."""

    plan: str = AUTO
    peers: int = 3
    round: int = 0
    group_limit: int = 64


def effective_plan(plan: str, peer_count: int) -> str:
    """`auto` resolves by size: full up to SAMPLED_ABOVE peers, sampled above."""
    if plan == AUTO:
        return SAMPLED if peer_count > SAMPLED_ABOVE else FULL
    return plan if plan in (FULL, SAMPLED) else FULL


def rotation_offsets(*, peers: int, k: int, round: int) -> list[int]:
    """The offsets d (1..peers-1) of round `round`: peer i is paired with peer (i + d) mod peers.

    Round n takes offsets 1 + ((n*k + j) mod (peers-1)) for j in 0..k-1. Any ceil((peers-1)/k) consecutive rounds
    take n*k + j over that many consecutive integers, so every residue mod peers-1, so every offset: every
    *ordered* pair (i -> i+d), hence both directions of every worker pair, is proven at least once. With
    peers <= k+1 one round takes every offset: the full mesh."""
    if peers < 2 or k < 1:
        return []
    if k >= peers - 1:
        return list(range(1, peers))
    return sorted({1 + ((round * k + j) % (peers - 1)) for j in range(k)})


def rounds_to_cover(*, peers: int, k: int) -> int:
    """How many consecutive sampled rounds prove every ordered worker pair: ceil((peers-1)/k), 1 for a full mesh."""
    if peers < 2:
        return 1
    return max(1, -(-(peers - 1) // max(1, k)))


def peer_pairs(peers: list[MatrixNode], sampling: Sampling) -> list[tuple[MatrixNode, MatrixNode]]:
    """The ordered (source, destination) worker pairs one audit proves. Full: all of them. Sampled: the rotation
    over every peer (sorted by `order`, then name), plus the full mesh inside each network group of at most
    `group_limit` peers; a larger group is sampled like the rest."""
    ordered = sorted(peers, key=lambda n: (n.order, n.name))
    count = len(ordered)
    if effective_plan(sampling.plan, count) == FULL:
        return [(s, d) for s in ordered for d in ordered if s.name != d.name]
    chosen: dict[tuple[str, str], tuple[MatrixNode, MatrixNode]] = {}
    for offset in rotation_offsets(peers=count, k=sampling.peers, round=sampling.round):
        for i, source in enumerate(ordered):
            destination = ordered[(i + offset) % count]
            chosen[(source.name, destination.name)] = (source, destination)
    groups: dict[str, list[MatrixNode]] = {}
    for node in ordered:
        if node.group:
            groups.setdefault(node.group, []).append(node)
    for members in groups.values():
        if len(members) <= sampling.group_limit:
            for source in members:
                for destination in members:
                    if source.name != destination.name:
                        chosen[(source.name, destination.name)] = (source, destination)
    return sorted(chosen.values(), key=lambda pair: ((pair[0].order, pair[0].name), (pair[1].order, pair[1].name)))


def plan_paths(
    nodes: list[MatrixNode], profile: ProfileSpec, context: NodeContext, sampling: Sampling | None = None
) -> list[PathPlan]:
    """Every (check, source, destination) with the port rules it must prove; `context` carries the cluster options.
    In tunnel mode the worker keeps one connection to the server, so server-to-worker paths are planned as not
    needed (shown as `skip`, never probed). `sampling` chooses the worker-to-worker pairs (see peer_pairs); None:
    the full mesh."""
    servers = [n for n in nodes if n.role == "server"]
    workers = [n for n in nodes if n.role == "worker"]
    peers = workers + (servers if context.server_runs_worker else [])
    tunnel = "not needed: tunnel mode" if context.proxy_mode == "tunnel" else ""
    to_worker = path_rules(profile, context, role="worker", check_id=S2W)
    to_server = path_rules(profile, context, role="server", check_id=W2S)
    plans = []
    for server in servers:
        for worker in workers:
            plans.append(PathPlan(S2W, server, worker, to_worker, not_needed=tunnel))
            plans.append(PathPlan(W2S, worker, server, to_server))
    peer_rules = path_rules(profile, context, role="worker", check_id=W2W)
    if peer_rules:
        for source, destination in peer_pairs(peers, sampling or Sampling(plan=FULL)):
            plans.append(PathPlan(W2W, source, destination, peer_rules))
    return [plan for plan in plans if plan.rules]


# The matrix in chunks (issue 24). A chunk is a set of paths that one Celery worker proves in one go, with the
# listeners on their destinations up only while it runs. Paths are grouped by their worker end (the destination of
# a server-to-worker or worker-to-worker path, the source of a worker-to-server one), in the peers' order: each
# worker's group needs its own listener and at most the server's, and a chunk takes groups until it holds
# `max_listeners` listeners. The sampled rotation pairs a worker with the next few, so a chunk's sources are mostly
# its own listeners (one login each, the probe rides on the listener's connection).
PathKey = tuple[str, str, str]  # (check id, source name, destination name)


@dataclass(frozen=True)
class Chunk:
    index: int
    paths: tuple[PathKey, ...]
    listeners: tuple[str, ...]  # the destinations that listen while it runs
    sources: tuple[str, ...]  # the nodes that connect from themselves


def path_key(plan: PathPlan) -> PathKey:
    return (plan.check_id, plan.source.name, plan.destination.name)


def plan_chunks(plans: list[PathPlan], *, max_listeners: int) -> list[Chunk]:
    """Split the paths to probe into chunks of at most `max_listeners` listening nodes (at least 2: a worker and
    the server). Every path lands in exactly one chunk; the order is deterministic."""
    limit = max(2, max_listeners)
    groups: dict[tuple[int, str], list[PathPlan]] = {}
    for plan in plans:
        end = plan.source if plan.check_id == W2S else plan.destination
        groups.setdefault((end.order, end.name), []).append(plan)
    chunks: list[Chunk] = []
    paths: list[PathPlan] = []
    listening: dict[str, None] = {}

    def close() -> None:
        if paths:
            sources = dict.fromkeys(p.source.name for p in paths)
            chunks.append(Chunk(len(chunks), tuple(map(path_key, paths)), tuple(listening), tuple(sources)))

    for key in sorted(groups):
        group = sorted(groups[key], key=lambda p: (p.check_id, p.source.order, p.source.name, p.destination.name))
        needed = dict.fromkeys(p.destination.name for p in group)
        if paths and len(listening | needed) > limit:
            close()
            paths, listening = [], {}
        paths.extend(group)
        listening.update(needed)
    close()
    return chunks


def matrix_thread_bound(*, max_listeners: int, concurrency: int, tasks: int = 1) -> int:
    """The most threads a worker process holds while it runs up to `tasks` chunks at once (its Celery concurrency):
    per chunk, the pool thread that runs it, one paramiko transport per listener, a pool of `concurrency` threads
    opening listeners or running probers and a transport for each prober's own login, and its lease; plus a few of
    the worker's own (the main thread, Celery's timer and consumer). None of it grows with the cluster."""
    per_chunk = 1 + max(2, max_listeners) + 2 * max(1, concurrency) + 1
    return 8 + max(1, tasks) * per_chunk


@dataclass
class Listener:
    bound: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)
    denied: dict[int, str] = field(default_factory=dict)
    error: str = ""


def parse_listener_line(line: str, listener: Listener) -> bool:
    """Feed one listener output line; True once it printed READY."""
    parts = line.split()
    if not parts:
        return False
    if parts[0] == "READY":
        return True
    if len(parts) >= 2 and parts[1].isdigit():
        port = int(parts[1])
        if parts[0] == "BOUND":
            listener.bound.add(port)
        elif parts[0] == "BUSY":
            listener.busy.add(port)
        elif parts[0] == "DENIED":
            listener.denied[port] = parts[2] if len(parts) > 2 else "denied"
    return False


def parse_prober_output(text: str) -> dict[tuple[str, int], tuple[str, str]]:
    """`host port outcome detail` lines, and `host * connected port,port,...` for the ports of a host that
    connected -> {(host, port): (outcome, detail)}; outcome "timeout" reads "timed out". Anything else (the node's
    output is not trusted) is skipped, as are ports outside 1-65535."""
    outcomes = {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[1] == "*" and parts[2] == "connected":
            for port in parts[3].split(","):
                if port.isdigit() and 0 < len(port) <= 5 and 0 < int(port) < 65536:
                    outcomes[(parts[0], int(port))] = ("connected", "OK")
            continue
        if len(parts) >= 3 and parts[1].isdigit() and len(parts[1]) <= 5 and 0 < int(parts[1]) < 65536:
            outcome = "timed out" if parts[2] == "timeout" else parts[2]
            outcomes[(parts[0], int(parts[1]))] = (outcome, parts[3] if len(parts) > 3 else "")
    return outcomes


@dataclass
class EndView:
    """How one end of a path sees it: the status counted in that node's readiness, and what to do there."""

    status: str
    summary: str
    remediation: str = ""
    commands: tuple[str, ...] = ()  # template-built; only on the end where the fix is made


@dataclass
class PathVerdict:
    status: str  # the path's own status (fail when it is blocked, wherever the block is)
    summary: str
    evidence: str
    remediation: str
    outcomes: dict[int, tuple[str, str]]
    blocked_at: str = ""  # the node where the evidence places the block ("" when unknown or not failing)
    ends: dict[str, EndView] = field(default_factory=dict)  # node name -> its view; each end has one
    commands: tuple[str, ...] = ()  # the fix's commands, run on the node where the fix is made


_ICMP_FROM = re.compile(r"\bicmp (\d+)/(\d+) from (\S+)")


def locate_block(plan: PathPlan, failing: dict[int, tuple[str, str]]) -> tuple[str, list[str]]:
    """(node name where the block is, or "", and the evidence lines that say so) for the failing ports.

    The evidence: an ICMP error sent by one end (its address is the offender the prober read from the socket's
    error queue), or one end's own firewall rules dropping or rejecting the port (the destination's input, the
    source's output). Every failing port must point at the same node, else the place is unknown."""
    src, dst = plan.source, plan.destination
    places: set[str] = set()
    lines: list[str] = []
    for port, (_outcome, detail) in sorted(failing.items()):
        icmp = _ICMP_FROM.search(detail)
        if icmp:
            sender = icmp.group(3)
            where = dst.name if sender == dst.address else src.name if sender == src.address else ""
            lines.append(
                f"  {port}: ICMP type {icmp.group(1)} code {icmp.group(2)} sent by {sender}"
                + (f" ({where})" if where else " (not an end of this path: something between them)")
            )
            places.add(where)
            continue
        rule = blocking_rule(dst.firewall_evidence, port)
        if rule:
            lines.append(f"  {port}: {dst.name}'s own firewall rule: {rule}")
            places.add(dst.name)
            continue
        rule = blocking_rule(src.firewall_evidence, port, outgoing=True)
        if rule:
            lines.append(f"  {port}: {src.name}'s own firewall rule: {rule}")
            places.add(src.name)
            continue
        lines.append(f"  {port}: no evidence of where it is blocked")
        places.add("")
    return (places.pop() if len(places) == 1 else ""), lines


def path_remediation(plan: PathPlan, failures: dict[str, list[int]], blocked_at: str) -> Remedy:
    """What to change for a failing path, phrased for the node where the change is made: the explanation, and the
    firewall commands for the destination when the block is there or its place is unknown."""
    src, dst = plan.source, plan.destination
    hint = _failure_hint(failures)
    if blocked_at and blocked_at == src.name:
        spans = ", ".join(label(a, b) for ports in failures.values() for a, b in compact(ports))
        return Remedy(
            (
                f"On {src.name}: its own firewall drops or rejects outgoing TCP to {dst.name} port {spans}; remove "
                f"that rule or add an ACCEPT before it (see the evidence for the rule). {hint}"
            ).strip()
        )
    fix = fix_open_ports(
        firewall=dst.firewall,
        spans=compact([port for ports in failures.values() for port in ports]),
        on=dst.name,
        hint=hint,
        between="" if blocked_at else f"{src.name} and {dst.name}",
    )
    return Remedy(f"On {dst.name}: {fix.text}", fix.commands)


def judge_path(plan: PathPlan, outcomes: dict[int, tuple[str, str]], listener: Listener | None) -> PathVerdict:
    """pass when every port connected; fail on refused/timed out/unreachable where something listened (or for any
    time-out or unreachable); warn for a refusal where no listener could be opened, which proves nothing.

    A failing path counts against the node where the evidence places the block (see locate_block); the other end
    shows it as "blocked at" that node, as a warn that does not count against its readiness. Where the evidence
    cannot tell, both ends fail."""
    src, dst = plan.source.name, plan.destination.name
    listening = (listener.bound | listener.busy) if listener else set()
    failures: dict[str, list[int]] = {}
    unproven: list[int] = []
    for port in plan.ports:
        outcome, _detail = outcomes.get(port, ("not tested", ""))
        if outcome == "connected":
            continue
        if outcome == "refused" and port not in listening:
            unproven.append(port)
            continue
        failures.setdefault(outcome, []).append(port)
    lines = [f"{src} -> {dst} ({plan.destination.address}), {len(plan.ports)} ports"]
    connected = [p for p in plan.ports if outcomes.get(p, ("",))[0] == "connected"]
    for port in plan.ports:
        outcome, detail = outcomes.get(port, ("not tested", ""))
        if outcome == "connected":
            continue
        mark = (
            "listening"
            if port in listening
            else ("no listener: " + listener.denied.get(port, "not opened") if listener else "no listener")
        )
        lines.append(f"  {port}: {outcome} {detail} ({mark})".rstrip())
    if connected:
        lines.append(f"  connected: {', '.join(label(a, b) for a, b in compact(connected))}")
    if listener and listener.error:
        lines.append(f"listener: {listener.error}")
    lines.append(f"{dst} firewall: {plan.destination.firewall_evidence or plan.destination.firewall}")
    if failures:
        failing = {p: outcomes.get(p, ("not tested", "")) for ports in failures.values() for p in ports}
        blocked_at, where = locate_block(plan, failing)
        lines.append(f"blocked at: {blocked_at or 'unknown'}")
        lines.extend(where)
        evidence = "\n".join(lines)
        parts = [
            f"{', '.join(label(a, b) for a, b in compact(ports))} {outcome}"
            for outcome, ports in sorted(failures.items())
        ]
        summary = f"{src} -> {dst}: {'; '.join(parts)}"
        fix = path_remediation(plan, failures, blocked_at)
        if blocked_at:
            other = dst if blocked_at == src else src
            ends = {
                blocked_at: EndView("fail", f"{summary} (blocked at {blocked_at}, here)", fix.text, fix.commands),
                other: EndView("warn", f"{summary} (blocked at {blocked_at})"),
            }
            summary = f"{summary} (blocked at {blocked_at})"
        else:  # both ends fail; the firewall commands run on the destination only
            ends = {src: EndView("fail", summary, fix.text), dst: EndView("fail", summary, fix.text, fix.commands)}
        return PathVerdict("fail", summary, evidence, fix.text, outcomes, blocked_at, ends, fix.commands)
    evidence = "\n".join(lines)
    if unproven:
        why = listener.error if listener and listener.error else "no listener could be opened on those ports"
        ports = ", ".join(label(a, b) for a, b in compact(unproven))
        summary = f"{src} -> {dst}: {ports} refused, but {why}: not proof of a block"
        remediation = f"Re-audit as root so Preflight can listen on {ports} on {dst}, or check its firewall."
        ends = {dst: EndView("warn", summary, remediation), src: EndView("warn", summary)}
        return PathVerdict("warn", summary, evidence, remediation, outcomes, "", ends)
    summary = f"{src} -> {dst}: all {len(plan.ports)} ports connected"
    return PathVerdict(
        "pass", summary, evidence, "", outcomes, "", {src: EndView("pass", summary), dst: EndView("pass", summary)}
    )


def not_tested(plan: PathPlan, why: str, *, at_fault: str = "", fault_is_own: bool = False) -> PathVerdict:
    """A path that could not be tested. `at_fault` names the node that is why: when its own listener or prober
    failed (`fault_is_own`), the path is `error` there; every other end (and an end whose audit did not complete,
    which carries its own error) shows it as `skip`, naming the node."""
    src, dst = plan.source.name, plan.destination.name
    summary = f"{src} -> {dst}: not tested: {why}"
    ends = {name: EndView("skip", summary) for name in (src, dst)}
    if at_fault and fault_is_own:
        ends[at_fault] = EndView("error", summary)
    status = "error" if at_fault and fault_is_own else "skip"
    return PathVerdict(status, summary, f"not tested: {why}", "", {}, "", ends)


def not_needed(plan: PathPlan) -> PathVerdict:
    """A path the cluster's options do not need (tunnel mode): `skip` at both ends, saying why."""
    src, dst = plan.source.name, plan.destination.name
    summary = f"{src} -> {dst}: {plan.not_needed}"
    ends = {name: EndView("skip", summary) for name in (src, dst)}
    return PathVerdict("skip", summary, plan.not_needed, "", {}, "", ends)


def _failure_hint(failures: dict[str, list[int]]) -> str:
    hints = []
    if "timed out" in failures:
        hints.append("'timed out' means packets are dropped (a DROP rule).")
    if "refused" in failures:
        hints.append("'refused' while Preflight listened means a REJECT rule with tcp-reset.")
    if "unreachable" in failures:
        hints.append("'unreachable' means an ICMP reject (icmp-host-prohibited or icmp-admin-prohibited) or no route.")
    return " ".join(hints)

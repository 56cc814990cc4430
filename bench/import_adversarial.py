"""Parse time of adversarial Ansible inventories (issue 19): a 5 MB INI file at every cap of the importer, and the 0.9
MB file of the issue (600 groups, each listing every later group as a child, and 5,000 hosts). Goal: under 5 s.

The 5 MB file is as hard as the caps allow: groups each listing every later group as a child (up to
MAX_CHILD_LINKS), variables on every group, the most hosts an import may create (PREFLIGHT_IMPORT_MAX_HOSTS, 5,000
by default), each host in the deepest group of the DAG and in its own combination of 16 groups outside it (so no two
hosts share a merge), padded with more membership lines to 5 MB. It is parsed as the import parses it, then imported
through `inventory_import` (parse, plan, and the 5,000 nodes written to a throwaway SQLite database). The same file
with the parser's own ceiling of 100,000 hosts is refused by the inherited-memberships cap; that refusal is timed
too.

Run: .venv/bin/python -m bench.import_adversarial [--size-mb 5] [--repeat 3] [--skip-import]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import django_setup


def adversarial_ini(*, size: int, hosts: int, max_groups: int, max_links: int) -> str:
    """An INI inventory of about `size` bytes: a complete group DAG within `max_links`, `hosts` hosts, padding."""
    groups = 1
    while (groups + 1) * groups // 2 + 1 <= max_links and groups + 1 <= max_groups - 3 - 16:
        groups += 1
    names = [f"g{i:03d}" for i in range(groups)]
    parts = ["[workers:children]\n", f"{names[0]}\n"]
    for i, name in enumerate(names):
        parts.append(f"[{name}:children]\n")
        parts.extend(f"{child}\n" for child in names[i + 1 :])
        parts.append(f"[{name}:vars]\nv{i % 50}=x{i}\n")
    head = "".join(parts)
    # Host k is in the deepest group and in the bit groups b00-b15 chosen by the bits of k: those sit outside the
    # DAG, with variables of their own, so every host has its own set of groups and needs its own merge.
    host_names = [f"h{k:05d}" for k in range(hosts)]
    bits = 16
    body: list[str] = [
        f"[{names[-1]}]\n",
        *(f"{h} ansible_host=10.{k >> 16}.{(k >> 8) & 255}.{k & 255}\n" for k, h in enumerate(host_names)),
    ]
    for bit_index in range(bits):
        body.append(f"[b{bit_index:02d}:vars]\nv{bit_index % 50}=b{bit_index}\n[b{bit_index:02d}]\n")
        body.extend(f"{h}\n" for k, h in enumerate(host_names) if k >> bit_index & 1)
    text = head + "".join(body)
    if len(text) > size:  # the most hosts and memberships that fit
        text = text[: text.rindex("\n", 0, size) + 1]
    # Padding: every host again in the middle groups (each line still has to be read), until the file is `size`.
    padding: list[str] = []
    length = len(text)
    group_index = 0
    while length < size and group_index < groups - 1:
        section = f"[{names[group_index]}]\n"
        padding.append(section)
        length += len(section)
        for h in host_names:
            if length + len(h) + 1 > size:
                break
            padding.append(f"{h}\n")
            length += len(h) + 1
        group_index += 1
    if length < size:  # a comment, if the groups ran out
        padding.append("#" * (size - length - 1) + "\n")
    return text + "".join(padding)


def issue_ini(*, groups: int = 600, hosts: int = 5000) -> str:
    """The issue's file: 600 groups each listing every later group as a child, 5,000 hosts in the deepest."""
    parts = ["[workers:children]\ng0\n"]
    for i in range(groups):
        parts.append(f"[g{i}:children]\n" + "".join(f"g{j}\n" for j in range(i + 1, groups)))
    parts.append(f"[g{groups - 1}]\n" + "".join(f"h{k}\n" for k in range(hosts)))
    return "".join(parts)


def timed(label: str, text: str, call, repeat: int = 1) -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            result = call(text)
            outcome = f"accepted: {result}"
        except Exception as exc:  # noqa: BLE001 - the benchmark reports what the importer said
            outcome = f"refused: {str(exc)[:160]}"
        times.append(time.perf_counter() - started)
    runs = " / ".join(f"{t:.2f}" for t in times)
    print(f"{label}: {len(text) / 1e6:.2f} MB in {runs} s (median {statistics.median(times):.2f} s), {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each parse")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    django_setup()
    from django.conf import settings

    from inventory.importers.ansible import MAX_CHILD_LINKS, MAX_GROUPS, MAX_HOSTS, parse_inventory
    from inventory.services import inventory_import

    limit = settings.PREFLIGHT_IMPORT_MAX_HOSTS
    size = int(args.size_mb * 1_000_000)
    text = adversarial_ini(size=size, hosts=limit, max_groups=MAX_GROUPS, max_links=MAX_CHILD_LINKS)

    def parse(text: str, max_hosts: int = limit) -> str:
        parsed = parse_inventory(text, source="adversarial.ini", max_hosts=max_hosts)
        links = sum(len(g.children) for g in parsed.groups.values())
        inherited = sum(len(h.groups) + len(h.vars) for h in parsed.hosts.values())
        return f"{len(parsed.groups)} groups, {links} child links, {len(parsed.hosts)} hosts, {inherited:,} inherited"

    timed(f"5 MB adversarial INI, parse (max_hosts {limit})", text, parse, args.repeat)
    big = adversarial_ini(size=size, hosts=MAX_HOSTS, max_groups=MAX_GROUPS, max_links=MAX_CHILD_LINKS)
    timed(f"5 MB adversarial INI, parse (max_hosts {MAX_HOSTS})", big, lambda t: parse(t, MAX_HOSTS), args.repeat)
    timed("the issue's 0.9 MB file (600 groups), parse", issue_ini(), parse, args.repeat)
    if not args.skip_import:

        def whole(text: str) -> str:
            report = inventory_import(text=text, source="adversarial.ini", cluster_name="adversarial")
            return f"{len(report.created)} nodes created"

        timed("5 MB adversarial INI through inventory_import (parse, plan, nodes written)", text, whole)


if __name__ == "__main__":
    main()

import json
import threading

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from checks.choices import Trigger
from checks.selectors import audit_detail
from checks.services import AuditRefused, audit_run_inline, audit_start
from inventory.models import Cluster

MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "error": "ERR ", "skip": "skip", "unknown": "?   "}


class Command(BaseCommand):
    help = (
        "Audit a cluster (or some of its nodes) now, store the results, and print them. Exit 0 when no check "
        "failed or errored (waived ones do not count), 1 otherwise, 2 on bad usage."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cluster", required=True)
        parser.add_argument("--node", action="append", dest="nodes", metavar="NAME", help="Repeat for several nodes")
        parser.add_argument("--json", action="store_true", help="Print the audit output contract as JSON")
        parser.add_argument(
            "--ignore",
            action="append",
            dest="ignore",
            metavar="CHECK_ID",
            help="Waive this check for this run only (repeat for several); the JSON lists it under `ignored`",
        )

    def handle(self, *args, cluster, nodes, json: bool, ignore=None, **options):
        found = Cluster.objects.filter(name=cluster).first()
        if found is None:
            raise CommandError(f"no cluster named {cluster!r}", returncode=2)
        try:
            audit = audit_start(cluster=found, node_names=nodes, trigger=Trigger.CLI, ignore=ignore)
        except AuditRefused as exc:
            raise CommandError(str(exc), returncode=2) from None
        with AuditProgress(stream=getattr(self.stderr, "_out", self.stderr), enabled=not json) as progress:
            audit = audit_run_inline(audit=audit, progress=progress.event if progress.live else None)
        document = audit_detail(audit_id=audit.pk)
        if json:
            self.stdout.write(_dumps(document))
        else:
            self._table(document)
        failed = any(
            c["status"] in ("fail", "error") and not c.get("waived") for n in document["nodes"] for c in n["checks"]
        )
        if failed:
            raise SystemExit(1)

    def _table(self, document: dict) -> None:
        self.stdout.write(
            f"Audit {document['audit']} of {document['cluster']} ({document['profile']}): {document['status']}"
        )
        for node in document["nodes"]:
            self.stdout.write(f"\n{node['name']} ({node['role']}, {node['address']}): {node['status'].upper()}")
            for check in node["checks"]:
                waived = f" [waived: {check['waived']['reason']}]" if check.get("waived") else ""
                self.stdout.write(
                    f"  {MARK.get(check['status'], check['status'])}  {check['id']:<32} {check['summary']}{waived}"
                )


def _dumps(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


class AuditProgress:
    """A live line on stderr while the audit runs: nodes done of total, failures so far, then the matrix's phase and
    its paths. Only on a terminal, and never with --json (a script reads the output then)."""

    def __init__(self, *, stream, enabled: bool) -> None:
        self.console = Console(file=stream, stderr=True)
        self.live = enabled and self.console.is_terminal
        self.lock = threading.Lock()
        self.failed = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("nodes", total=None, detail="")

    def __enter__(self) -> "AuditProgress":
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def event(self, kind: str, **facts) -> None:
        with self.lock:
            if kind == "start":
                self.progress.update(self.task, total=facts["nodes"], detail="0 failed")
            elif kind == "node":
                if facts.get("status") in ("fail", "error"):
                    self.failed += 1
                self.progress.update(self.task, advance=1, detail=f"{self.failed} failed")
            elif kind == "matrix":
                self.progress.update(
                    self.task,
                    detail=f"{self.failed} failed · matrix: {facts['phase']}, {facts['paths']} paths "
                    f"({facts['runnable']} to probe)",
                )

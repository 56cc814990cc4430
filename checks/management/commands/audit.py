import json
import threading

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from checks.choices import Trigger
from checks.selectors.audits import audit_detail
from checks.selectors.pages import NOT_CHECKED
from checks.services import AuditRefused, audit_run_inline, audit_start
from inventory.models import Cluster
from portal import states


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
        for line in table_lines(document):
            self.stdout.write(line)


def _readiness(node: dict) -> states.Status:
    """The node's state as the pages show it (a document from before `reached` was recorded reads as it did)."""
    return states.node_state(node["status"], node.get("reached"), portal_fault=bool(node.get("portal_error")))


def table_lines(document: dict) -> list[str]:
    """The audit as text, in the words of portal.states: a node's readiness, each check's outcome. The checks that
    did not run on a node (not reached, probe cut short) are one line, not one identical line each."""
    lines = [
        f"Audit {document['audit']} of {document['cluster']} ({document['profile']}): "
        f"{states.audit_result(document['status']).label}"
    ]
    for node in document["nodes"]:
        lines.append(f"\n{node['name']} ({node['role']}, {node['address']}): {_readiness(node).label}")
        not_run = [c for c in node["checks"] if c["summary"].startswith(NOT_CHECKED)]
        for check in node["checks"]:
            if check in not_run:
                continue
            waived = f" [waived: {check['waived']['reason']}]" if check.get("waived") else ""
            mark = states.check_status(check["status"]).label.upper()
            lines.append(f"  {mark:<5}  {check['id']:<32} {check['summary']}{waived}")
        if not_run:
            reasons = {c["summary"][len(NOT_CHECKED) :] for c in not_run}
            said = next((c["id"] for c in node["checks"] if c not in not_run and c["summary"] in reasons), None)
            why = f"see {said}" if said else (reasons.pop() if len(reasons) == 1 else "the probe did not run")
            lines.append(f"  {'-':<5}  {len(not_run)} checks did not run: {why}")
    return lines


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
                chunks = facts.get("chunks") or 1  # (a big matrix runs chunk after chunk: which one is running)
                where = f" chunk {facts.get('chunk') or 1} of {chunks}" if chunks > 1 else ""
                self.progress.update(
                    self.task,
                    detail=f"{self.failed} failed · matrix{where}: {facts['phase']}, {facts['paths']} paths "
                    f"({facts['runnable']} to probe)",
                )

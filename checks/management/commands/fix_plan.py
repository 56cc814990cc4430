"""`manage.py fix_plan --cluster NAME [--audit ID] [--json | --ansible]`: the cluster's fix plan, as the page and
the API show it (checks.services.fix.cluster_fix_plan)."""

import json

from django.core.management.base import BaseCommand, CommandError

from checks.services.fix import FixPlanUnavailable, cluster_fix_plan
from inventory.models import Cluster


class Command(BaseCommand):
    help = "Group the cluster's nodes by the exact commands they need, from its latest (or a given) audit."

    def add_arguments(self, parser):
        parser.add_argument("--cluster", required=True)
        parser.add_argument("--audit", type=int, default=None, help="Build the plan from this audit")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="A JSON object whose `groups` list nodes and commands")
        output.add_argument("--ansible", action="store_true", help="An Ansible playbook: one play per group")

    def handle(self, *args, cluster: str, audit: int | None, json: bool, ansible: bool, **options):
        found = Cluster.objects.filter(name=cluster).first()
        if found is None:
            raise CommandError(f"no cluster named {cluster!r}", returncode=2)
        try:
            view = cluster_fix_plan(cluster=found, audit_id=audit)
        except FixPlanUnavailable as exc:
            raise CommandError(str(exc), returncode=2) from None
        if json:
            self.stdout.write(_json(view.as_dict()))
            return
        if ansible:
            self.stdout.write(view.playbook(), ending="")
            return
        data = view.as_dict()
        newer = f" (a newer audit exists: {data['latest_audit']})" if data["newer_audit"] else ""
        self.stdout.write(f"Fix plan of {data['cluster']} from audit {data['audit']}{newer}")
        if not data["groups"]:
            self.stdout.write("Nothing to run on any node.")
        for group in data["groups"]:
            self.stdout.write("")
            self.stdout.write(group["title"])
            self.stdout.write("  nodes: " + ", ".join(group["nodes"]))
            for number, command in enumerate(group["commands"], 1):
                self.stdout.write(f"  {number}. {command}")
        for manual in data["manual"]:
            self.stdout.write(f"{manual['node']}: no command for {', '.join(manual['check_ids'])} (see the node page)")


def _json(data: dict) -> str:
    return json.dumps(data, indent=2)

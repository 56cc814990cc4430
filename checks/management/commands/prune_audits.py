from django.core.management.base import BaseCommand

from checks.services import audit_prune


class Command(BaseCommand):
    help = (
        "Delete finished audits older than PREFLIGHT_AUDIT_RETENTION_DAYS with their results and paths, keeping "
        "the newest PREFLIGHT_AUDIT_KEEP of each cluster. Beat runs the same daily."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing")

    def handle(self, *args, dry_run: bool, **options):
        report = audit_prune(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {report}")
        for cluster, count in sorted(report.by_cluster.items()):
            self.stdout.write(f"  {cluster}: {count} audits")

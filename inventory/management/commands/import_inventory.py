from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inventory.importers.ansible import InventoryError
from inventory.services import inventory_import


class Command(BaseCommand):
    help = "Import an Ansible inventory (INI or YAML) into a cluster: all hosts or none."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the inventory file")
        parser.add_argument("--cluster", help="Cluster name (default: the file's name without extension)")
        parser.add_argument("--profile", help="Requirement profile key, e.g. gpustack-2.0 or gpustack-2.2")
        parser.add_argument("--format", choices=["ini", "yaml"], help="Override format detection")

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read inventory: {exc}") from None
        try:
            report = inventory_import(
                text=text,
                source=str(path),
                cluster_name=options["cluster"],
                profile_key=options["profile"],
                fmt=options["format"],
                base_dir=path.resolve().parent,
            )
        except InventoryError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from None
        self.stdout.write(self.style.SUCCESS(report.summary()))

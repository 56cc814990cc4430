from django.core.management.base import BaseCommand

from inventory.services import demo_load


class Command(BaseCommand):
    help = "Create (or refresh) the demo cluster: this machine as a local server node, plus two loopback workers."

    def handle(self, *args, **options):
        cluster, created = demo_load()
        verb = "Created" if created else "Refreshed"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} demo cluster {cluster.name!r} with {cluster.nodes.count()} nodes")
        )

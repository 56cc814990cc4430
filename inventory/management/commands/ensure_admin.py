import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'admin' superuser with a generated password if there is none, and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-file", default="run/admin-password", help="Where the generated password is kept"
        )

    def handle(self, *args, username, password_file, **options):
        User = get_user_model()
        path = Path(password_file)
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(password + "\n")
        elif path.exists():
            password = path.read_text().strip()
        else:
            self.stdout.write(f"Admin login: {username} (password unchanged; reset with manage.py changepassword)")
            return
        self.stdout.write(self.style.SUCCESS(f"Admin login: {username} / {password}  (kept in {path})"))

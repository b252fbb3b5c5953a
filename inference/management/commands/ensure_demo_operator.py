"""Creates a local administrator for the development server, once, with a random password."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "DEBUG only: creates user 'admin' (staff, superuser, benchmark operator) with a random password written to var/."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("Refusing to create a development administrator with DEBUG off.")
        user_model = get_user_model()
        path = settings.VAR_DIR / "admin-password.txt"
        if user_model.objects.filter(is_superuser=True).exists():
            if path.exists():
                self.stdout.write(f"Admin login: admin / password in {path}")
            return
        password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser("admin", "admin@localhost", password)
        user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
        path.write_text(password + "\n")
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created admin login: admin / {password} (also in {path})"))

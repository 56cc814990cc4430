"""Test settings: fixed throwaway secrets, fast hashing; the database still comes from DATABASE_URL when set."""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# A fixed, valid Fernet key so encrypted columns are reproducible in tests; never used outside the test suite.
os.environ.setdefault("PREFLIGHT_FERNET_KEYS", "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhIT0=")

# Integration tests run their own redis-server on a unix socket inside this checkout (tests/integration/conftest.py
# starts it, and restarts it in a fault test): no port to collide with, nothing shared with a running portal.
_TEST_REDIS_SOCKET = Path(__file__).resolve().parents[2] / "run" / "test-redis.sock"
os.environ.setdefault("CELERY_BROKER_URL", f"redis+socket://{_TEST_REDIS_SOCKET}")
# Short bounds so hung nodes end fast in tests; real probes take well under a second on the test hosts.
os.environ.setdefault("PREFLIGHT_PROBE_TIMEOUT", "8")
os.environ.setdefault("PREFLIGHT_SSH_CONNECT_TIMEOUT", "3")
os.environ.setdefault("PREFLIGHT_TOOL_TIMEOUT", "5")
# Tests may reach only loopback and their own test hosts (tests/lab picks 10.231.x.0/24), never a DNS name.
os.environ.setdefault("PREFLIGHT_TARGET_NETWORKS", "127.0.0.0/8,10.231.0.0/16")
os.environ.setdefault("PREFLIGHT_TARGET_ALLOW_NAMES", "false")
# The suite was written against the seed profile: clusters made without a profile get gpustack-2.0 in tests (tests of
# the setting itself override it).
os.environ.setdefault("PREFLIGHT_DEFAULT_PROFILE", "gpustack-2.0")
# The test servers (Django's test client, live_server) speak plain HTTP.
os.environ.setdefault("PREFLIGHT_HTTPS", "false")

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Eager in the test process (unit tests need no broker); a real worker started by the integration tests sets
# CELERY_TASK_ALWAYS_EAGER=false so its fan-out goes through Redis like production.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)  # noqa: F405
# Tests render pages without collectstatic; WhiteNoise finds files through the finders instead.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "run" / "test-db.sqlite3")}  # noqa: F405
    (BASE_DIR / "run").mkdir(exist_ok=True)  # noqa: F405

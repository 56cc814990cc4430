"""Debian's Chromium driven by Playwright (never a downloaded browser), against the portal served by gunicorn."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, missing_prerequisite
from tests.integration.fixtures import OUTPUT
from tests.lab.services import stop_process

CHROMIUM = os.environ.get("PREFLIGHT_CHROMIUM", "/usr/bin/chromium")
# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make there are synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser(django_db_setup):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        missing_prerequisite(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, and under it Django's context-local `connections`
    # hands out fresh connection objects that lack the serialized test data; serialized_rollback would then silently
    # restore nothing. Keep the serialized contents on the connection class so every connection object has them.
    default = connections["default"]
    if hasattr(default, "_test_serialized_contents"):
        type(default)._test_serialized_contents = default._test_serialized_contents

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield browser
        browser.close()


# Every page a browser test opens reports what its Content-Security-Policy refused: the `securitypolicyviolation`
# events, sent to the test through a Playwright binding by an init script (neither is governed by the page's policy,
# and both outlive a navigation), and the console's "Refused to ..." errors. A test ends with none, on every page.
RECORD_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__reportCsp([e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber].join(" "));
});
"""


class CspWatch:
    """The CSP violations of every page of one browser context."""

    def __init__(self, context) -> None:
        self.found: list[str] = []
        context.expose_binding("__reportCsp", lambda source, text: self.found.append(f"{source['page'].url}: {text}"))
        context.add_init_script(RECORD_VIOLATIONS)
        context.on("page", self.watch)

    def watch(self, page) -> None:
        page.on("console", lambda message: self.console(page, message))

    def console(self, page, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.found.append(f"{page.url}: {message.text}")


@pytest.fixture
def page(browser):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
    )
    watch = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert watch.found == [], watch.found


class GunicornServer:
    """The portal served the way scripts/serve.sh serves it: gunicorn with portal/gunicorn.conf.py, in its own
    processes, on the test database file and the test Redis."""

    def __init__(self, env: dict, log) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn.conf.py"],
            cwd=REPO,
            env={**env, "PREFLIGHT_BIND": f"127.0.0.1:{self.port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/login/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"gunicorn did not answer within {timeout:g} s")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def portal_server(django_db_setup, redis_broker):
    """The portal for the browser: gunicorn, as scripts/serve.sh runs it (not pytest-django's in-process server)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("the browser tests serve the SQLite test database file through gunicorn")
    OUTPUT.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"sqlite:///{database['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "WEB_WORKERS": "2",
    }
    with open(OUTPUT / "gunicorn.log", "w") as log:
        server = GunicornServer(env, log)
        server.wait_ready()
        yield server
        server.stop()

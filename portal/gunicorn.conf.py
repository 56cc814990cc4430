"""gunicorn settings for Preflight: scripts/serve.sh and the browser tests serve the portal with exactly these.

`gunicorn -c portal/gunicorn.conf.py` serves portal.wsgi on PREFLIGHT_BIND (default 127.0.0.1:8000) with WEB_WORKERS
processes (default 2) of 4 threads each; static files come from WhiteNoise inside the app.
"""

import os

wsgi_app = "portal.wsgi:application"
bind = os.environ.get("PREFLIGHT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "gthread"
threads = 4
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new connections evenly over the
# workers; with one shared socket, keep-alive clients piled onto whichever worker woke first (README, Scale).
reuse_port = True
timeout = 60
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
# No control socket: it would live in the user's home, shared by every gunicorn of that user; nothing here uses it.
control_socket_disable = True

#!/usr/bin/env bash
# Set up and run Preflight on embedded defaults: SQLite, its own Redis (unix socket, AOF), a Celery worker, beat,
# the demo cluster, gunicorn serving the portal, and an admin login printed below. Idempotent: run it again to start
# the portal again. Django's development server is used only when DEBUG is on in .env.
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"

bootstrap_apt python3 python3-venv redis-server redis-tools openssh-client
bootstrap_venv
# From here on every file the portal, its worker and Redis write is this user's alone (umask 077; bootstrap.sh).
portal_private_files
if [ "$(id -u)" -eq 0 ]; then
  log "Running as root: the portal, its worker and Redis run as root too. Run serve.sh as an ordinary user (sudo is"
  log "used for apt only), or use the systemd units in deploy/systemd/, which run as the unprivileged preflight user."
fi

REDIS_SOCKET="$ROOT/run/redis/redis.sock"
portal_setup "$REDIS_SOCKET"
PY="$VENV/bin/python"
if grep -q "^CELERY_BROKER_URL=redis+socket://$REDIS_SOCKET\$" .env; then
  ensure_redis "$REDIS_SOCKET"
fi

# The Celery worker and beat run beside the portal and stop with it, each supervised: one that exits (Celery can,
# when it loses Redis) is started again. Beat is its own process, never the worker's child (`-B`), so a killed
# worker leaves no beat behind; it holds run/beat.lock (flock) while it runs, so a second serve.sh, or a restart
# while the old beat lingers, never starts a second beat. (The sweep also takes a lock of its own in Redis.)
(while true; do
  "$VENV/bin/celery" -A portal worker --pool threads --concurrency 16 --loglevel INFO \
    --logfile "$ROOT/run/celery.log" --pidfile "$ROOT/run/celery.pid" || true
  sleep 2
done) &
CELERY_LOOP=$!
(while true; do
  status=0
  flock --nonblock --conflict-exit-code 75 "$ROOT/run/beat.lock" \
    "$VENV/bin/celery" -A portal beat --loglevel INFO --logfile "$ROOT/run/beat.log" \
    --pidfile "$ROOT/run/beat.pid" || status=$?
  if [ "$status" = 75 ]; then log "Another Celery beat holds run/beat.lock; this one waits"; fi
  sleep 5
done) &
BEAT_LOOP=$!
stop_worker() {
  kill "$CELERY_LOOP" "$BEAT_LOOP" 2>/dev/null || true
  [ -f "$ROOT/run/celery.pid" ] && kill "$(cat "$ROOT/run/celery.pid")" 2>/dev/null || true
  [ -f "$ROOT/run/beat.pid" ] && kill "$(cat "$ROOT/run/beat.pid")" 2>/dev/null || true
}
trap stop_worker EXIT

# A real audit of the demo cluster, so there is something to look at: this machine is audited locally.
log "Auditing the demo cluster (this machine, plus two loopback workers that have no credential yet)"
"$PY" manage.py audit --cluster demo || true

"$PY" manage.py ensure_admin
BIND="127.0.0.1:${PORT:-8000}"
DEBUG_ON="$("$PY" -c 'import os, django; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base"); django.setup(); from django.conf import settings; print(int(settings.DEBUG))' 2>/dev/null | tail -1)"
log "Preflight: http://$BIND/admin/  (Ctrl-C to stop)"
if [ "$DEBUG_ON" = "1" ]; then
  log "DEBUG is on: serving with Django's development server (never do this in production)"
  "$PY" manage.py runserver --noreload "$BIND"
else
  # gunicorn, a production WSGI server (settings in portal/gunicorn.conf.py, shared with the browser tests).
  PREFLIGHT_BIND="$BIND" "$VENV/bin/gunicorn" -c portal/gunicorn.conf.py
fi

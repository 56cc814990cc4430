#!/usr/bin/env bash
# Set up and run Preflight on embedded defaults: SQLite, a local Redis and Celery worker, the demo cluster, and
# an admin login printed below. Idempotent: run it again to start the portal again.
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
mkdir -p run

bootstrap_apt python3 python3-venv redis-server redis-tools openssh-client
bootstrap_venv

if [ ! -f .env ]; then
  log "Writing .env with generated secrets (keep it: it holds the key that encrypts stored credentials)"
  umask 077
  {
    echo "SECRET_KEY=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))')"
    echo "PREFLIGHT_FERNET_KEYS=$("$VENV/bin/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    echo "DEBUG=False"
    echo "ALLOWED_HOSTS=127.0.0.1,localhost"
  } > .env
fi

PY="$VENV/bin/python"
"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py load_demo
ensure_redis

# The Celery worker (with beat) runs beside the portal and stops with it.
# Supervised: a worker that exits (Celery can, when it loses Redis) is started again.
(while true; do
  "$VENV/bin/celery" -A portal worker -B --pool threads --concurrency 16 --loglevel INFO \
    --logfile "$ROOT/run/celery.log" || true
  sleep 2
done) &
CELERY_PID=$!
trap 'kill $CELERY_PID 2>/dev/null; pkill -f "celery -A portal worker" 2>/dev/null || true' EXIT

# A real audit of the demo cluster, so there is something to look at: this machine is audited locally.
log "Auditing the demo cluster (this machine, plus two loopback workers that have no credential yet)"
"$PY" manage.py audit --cluster demo || true

"$PY" manage.py ensure_admin
log "Preflight: http://127.0.0.1:${PORT:-8000}/admin/  (Ctrl-C to stop)"
exec_args=(manage.py runserver --noreload "127.0.0.1:${PORT:-8000}")
"$PY" "${exec_args[@]}"

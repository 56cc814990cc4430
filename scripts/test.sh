#!/usr/bin/env bash
# Set up and run the whole test suite: lint, migration check, every test on SQLite, then the database-facing tests
# again on a real PostgreSQL. Installs what it needs (Debian packages, .venv) and starts its own services.
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
mkdir -p run test-output

bootstrap_apt python3 python3-venv redis-server redis-tools openssh-server openssh-client iproute2 iptables \
  postgresql postgresql-client procps netbase python3 chromium fonts-dejavu-core shellcheck systemd
bootstrap_venv requirements-dev.txt
# axe-core for the browser tests' accessibility checks: pinned by tests/browser/package-lock.json, read from disk.
# npm: Debian's package, unless the machine already has one (a nodejs build that bundles npm conflicts with it).
command -v npm >/dev/null 2>&1 || bootstrap_apt npm
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  log "npm ci (axe-core for tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund
fi
PY="$VENV/bin/python"
export DJANGO_SETTINGS_MODULE=portal.settings.test

log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check -q . || { echo "ruff format would change files (run .venv/bin/ruff format .)" >&2; exit 1; }

log "mypy --strict on the pure core (pyproject.toml [tool.mypy])"
"$VENV/bin/mypy"

log "import contracts (.importlinter: one-way layers, a pure core)"
"$VENV/bin/lint-imports" --no-cache

log "makemigrations --check"
"$PY" manage.py makemigrations --check --dry-run -v1

# The PostgreSQL run of the database-facing tests starts first, in the background: it shares nothing with the SQLite
# run (its own database server and test Redis socket, no test hosts), and overlapping the two keeps the suite inside its 15 minutes
# on 2 cores. Its output is printed in one piece after the SQLite run, and either run failing fails the suite.
log "pytest on PostgreSQL (database-facing tests), in the background: output in test-output/postgres.log"
source "$ROOT/scripts/postgres.sh"
ensure_postgres
# Its own test Redis socket: a session fixture it sets up (then skips on) would otherwise take the SQLite run's.
DATABASE_URL="$PREFLIGHT_TEST_PG_URL" CELERY_BROKER_URL="redis+socket://$ROOT/run/test-redis-pg.sock" \
  "$PY" -m pytest -m "django_db and not integration" -p no:cacheprovider "$@" >test-output/postgres.log 2>&1 &
pg_pid=$!
trap 'kill "$pg_pid" 2>/dev/null || true' EXIT

# No shared Redis: the integration tests start their own redis-server on a unix socket in run/ (and restart it).
log "pytest on SQLite"
sqlite_rc=0
"$PY" -m pytest "$@" || sqlite_rc=$?

pg_rc=0
wait "$pg_pid" || pg_rc=$?
trap - EXIT
log "pytest on PostgreSQL (database-facing tests): exit status $pg_rc"
cat test-output/postgres.log
log "SQLite run: exit status $sqlite_rc; PostgreSQL run: exit status $pg_rc"
[ "$sqlite_rc" -eq 0 ] && [ "$pg_rc" -eq 0 ]

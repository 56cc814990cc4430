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

# No shared Redis: the integration tests start their own redis-server on a unix socket in run/ (and restart it).
log "pytest on SQLite"
"$PY" -m pytest "$@"

log "pytest on PostgreSQL (database-facing tests)"
source "$ROOT/scripts/postgres.sh"
ensure_postgres
DATABASE_URL="$PREFLIGHT_TEST_PG_URL" "$PY" -m pytest -m "django_db and not integration" -p no:cacheprovider "$@"

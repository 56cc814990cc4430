# Sourced by serve.sh and test.sh: install what the project needs on a fresh Debian/Ubuntu machine, idempotently.
# Usage: bootstrap_apt PACKAGE...; bootstrap_venv [requirements.txt | requirements-dev.txt]; portal_private_files;
# portal_setup (serve.sh's set-up of the portal itself; tests/security/test_file_modes.py runs these two)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

bootstrap_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "Installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Package maintainer scripts must not start services in containers without an init system.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The contents a requirements file installs: the file and requirements.txt, which requirements-dev.txt includes (-r).
requirements_hash() {
  cat "$ROOT/requirements.txt" "$ROOT/$1" | sha256sum | cut -d' ' -f1
}

# bootstrap_venv [FILE]: install FILE (default requirements.txt, what the portal runs on; requirements-dev.txt adds
# the test and lint tools) unless exactly those contents are installed already. One stamp per file, so serve.sh and
# test.sh do not reinstall each other's set; installing the dev file also installs, and stamps, the runtime one.
bootstrap_venv() {
  local file="${1:-requirements.txt}"
  if [ ! -x "$VENV/bin/python" ]; then
    log "Creating virtualenv in .venv"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$VENV/.$file.sha256" 2>/dev/null)" != "$(requirements_hash "$file")" ]; then
    log "Installing Python requirements ($file) into .venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/$file"
    requirements_hash "$file" > "$VENV/.$file.sha256"
    requirements_hash requirements.txt > "$VENV/.requirements.txt.sha256"
  fi
}

# Start Preflight's own redis-server on a unix socket (no TCP port at all) if nothing answers there. The socket and
# its folder are mode 700: only this user (the portal, worker and beat) can reach the broker; nobody else on the
# machine can read or inject tasks. Redis keeps an append-only file (AOF, fsync every second) in that folder, so a
# restart loses no queued node audit; a Redis already running is switched to AOF. Usage: ensure_redis SOCKET_PATH
ensure_redis() {
  local socket="$1" dir
  dir="$(dirname "$socket")"
  mkdir -p "$dir" && chmod 700 "$dir"
  if ! redis-cli -s "$socket" ping >/dev/null 2>&1; then
    log "Starting redis-server on unix socket $socket (mode 700, no TCP port, append-only file)"
    redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 --daemonize yes --save '' \
      --appendonly yes --appendfsync everysec \
      --logfile "$dir/redis.log" --dir "$dir" --pidfile "$dir/redis.pid" >/dev/null
    for _ in $(seq 50); do redis-cli -s "$socket" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server did not start; see $dir/redis.log" >&2
    return 1
  fi
  if [ "$(redis-cli -s "$socket" config get appendonly | tail -1)" != "yes" ]; then
    log "Switching the running redis-server to an append-only file (appendfsync everysec)"
    redis-cli -s "$socket" config set appendfsync everysec >/dev/null
    redis-cli -s "$socket" config set appendonly yes >/dev/null
  fi
}

# Every file the portal writes is readable by its own user only (600, folders 700): the database and its -wal/-shm
# (sessions, encrypted credentials), .env (the keys), run/ (logs, pid files, the admin password, Redis), and the
# collected static files. Sets umask 077 for the rest of the calling script and takes group and other rights away
# from files an earlier run left (serve.sh before this ran migrate under umask 022: a 644 database).
# Apt and pip run before this, under the caller's umask: what they install is software, meant to be readable.
portal_private_files() {
  umask 077
  mkdir -p "$ROOT/run"
  local path
  for path in "$ROOT/run" "$ROOT/.env" "$ROOT"/db.sqlite3 "$ROOT"/db.sqlite3-* "$ROOT/staticfiles"; do
    if [ -e "$path" ]; then chmod -R go-rwx "$path"; fi
  done
}

# The portal's own set-up (after portal_private_files): .env with generated secrets on first start, settings added
# since older .env files were written, the database schema, static files and the demo cluster. Idempotent.
# Usage: portal_setup REDIS_SOCKET
portal_setup() {
  local redis_socket="$1" py="$VENV/bin/python"
  if [ ! -f "$ROOT/.env" ]; then
    log "Writing .env with generated secrets (keep it: it holds the key that encrypts stored credentials)"
    {
      echo "SECRET_KEY=$("$py" -c 'import secrets; print(secrets.token_urlsafe(50))')"
      echo "PREFLIGHT_FERNET_KEYS=$("$py" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
      echo "DEBUG=False"
      echo "ALLOWED_HOSTS=127.0.0.1,localhost"
    } > "$ROOT/.env"
  fi
  # Settings added since older .env files were written; each is appended once, never changed afterwards.
  # The quick start is served over plain HTTP on loopback; behind TLS set PREFLIGHT_HTTPS=true (README, Deployment).
  env_default PREFLIGHT_HTTPS false
  # Audits may connect only here until you widen it (CIDRs, or * for anywhere): the demo lives on loopback.
  env_default PREFLIGHT_TARGET_NETWORKS 127.0.0.0/8
  env_default CELERY_BROKER_URL "redis+socket://$redis_socket"
  (cd "$ROOT" && "$py" manage.py migrate --noinput -v0 && "$py" manage.py collectstatic --noinput -v0 \
    && "$py" manage.py load_demo)
}

env_default() { grep -q "^$1=" "$ROOT/.env" || { log "Adding $1 to .env"; echo "$1=$2" >> "$ROOT/.env"; }; }

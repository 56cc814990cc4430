# Sourced by serve.sh and test.sh: install what the project needs on a fresh Debian/Ubuntu machine, idempotently.
# Usage: bootstrap_apt PACKAGE...; bootstrap_venv [requirements.txt | requirements-dev.txt]
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

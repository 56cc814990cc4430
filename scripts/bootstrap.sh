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

# Start redis-server on loopback if nothing answers there (no init system is assumed).
ensure_redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "Starting redis-server on 127.0.0.1:6379"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
      --logfile "$ROOT/run/redis.log" --dir "$ROOT/run" >/dev/null
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server did not start; see run/redis.log" >&2
    return 1
  fi
}

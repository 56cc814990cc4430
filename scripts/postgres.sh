# Sourced by test.sh: start Debian's PostgreSQL cluster (no init system needed) and a role that may create the
# test database. Exports PREFLIGHT_TEST_PG_URL.
ensure_postgres() {
  local version
  version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    log "Creating PostgreSQL $version cluster"
    $SUDO pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "Starting PostgreSQL $version"
    $SUDO pg_ctlcluster "$version" main start
  fi
  local port
  port="$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')"
  $SUDO runuser -u postgres -- psql -p "$port" -qtAc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='preflight') THEN
       CREATE ROLE preflight LOGIN CREATEDB PASSWORD 'preflight-test'; END IF; END\$\$;" >/dev/null
  export PREFLIGHT_TEST_PG_URL="postgres://preflight:preflight-test@127.0.0.1:$port/preflight"
}

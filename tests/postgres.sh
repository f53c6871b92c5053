#!/usr/bin/env bash
# Makes sure the store's tests have a PostgreSQL, quietly, and does nothing when they do:
# with $DATABASE_URL set, or something listening on 127.0.0.1:5432, they use that.
# Otherwise: installs Debian's postgresql when missing, starts its cluster, and when user
# postgres cannot log in over loopback without a password, lets it (trust, loopback only).
set -euo pipefail

port=5432
cluster=main
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

listening() {
    timeout 2 bash -c ": </dev/tcp/127.0.0.1/$port" 2>/dev/null
}

logs_in() {
    psql -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "SELECT 1" >/dev/null 2>&1
}

wait_until() {  # wait_until CHECK: up to 30 s
    for _ in $(seq 150); do
        "$1" && return 0
        sleep 0.2
    done
    return 1
}

if [ -n "${DATABASE_URL:-}" ] || listening; then
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
[ -d "/etc/postgresql/$version/$cluster" ] || $sudo pg_createcluster "$version" "$cluster" >/dev/null
if ! $sudo pg_ctlcluster "$version" "$cluster" status >/dev/null 2>&1; then
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
fi
if ! wait_until listening; then
    echo "tests/postgres.sh: PostgreSQL $version/$cluster does not listen on 127.0.0.1:$port" >&2
    exit 1
fi

if ! logs_in; then
    # pg_hba.conf: the first matching line wins, so these go before the package's rules.
    hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
    rules=$(mktemp)
    printf '%s\n' \
        "# quartchat tests: user postgres from loopback without a password" \
        "host all postgres 127.0.0.1/32 trust" \
        "host all postgres ::1/128 trust" >"$rules"
    $sudo cat "$hba" >>"$rules"
    $sudo cp "$rules" "$hba"  # cp keeps the file's owner and mode
    rm -f "$rules"
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
    if ! wait_until logs_in; then
        echo "tests/postgres.sh: user postgres cannot log in on 127.0.0.1:$port" >&2
        exit 1
    fi
fi

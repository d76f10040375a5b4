#!/usr/bin/env bash
# Install the external programs the test suite starts for real: the PostgreSQL
# server binaries (Debian's /usr/lib/postgresql/<ver>/bin/{initdb,pg_ctl,postgres}).
#
# Runs apt-get only when the binaries are missing and we are root, so local
# reruns are fast. Without root it only warns: the `postgres_url` fixture then
# fails with a message that says what to install.
set -euo pipefail

have_pg() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_pg; then
    echo "install-test-peers: PostgreSQL server binaries present:" $(compgen -G '/usr/lib/postgresql/*/bin/initdb')
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-test-peers: WARNING: PostgreSQL server binaries are missing and this is not root;" >&2
    echo "install-test-peers: run 'apt-get install postgresql' as root, or the postgres tests will fail." >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-peers: installing PostgreSQL from Debian's packages"
apt-get update -q
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    postgresql </dev/null

if ! have_pg; then
    echo "install-test-peers: ERROR: apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi
echo "install-test-peers: installed:" $(compgen -G '/usr/lib/postgresql/*/bin/initdb')

#!/usr/bin/env bash
# Makes sure a PostgreSQL server (initdb, pg_ctl, postgres) is installed, and prints its bin
# folder. The tests start their own throwaway server from it (harness/postgres.py); nothing
# here starts one.
#
# Idempotent and quick once installed. Otherwise installs Debian's `postgresql` (as root, or
# through sudo), without the "main" cluster the package would create and start on port 5432:
# that cluster is not needed and must not hold the port.
set -euo pipefail

bin_dir() {
    # The newest major version that has a server, e.g. /usr/lib/postgresql/15/bin.
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null \
        | sort -V | tail -n 1)
    [[ -n $dir ]] && dirname "$dir"
}

if found=$(bin_dir); then
    echo "$found"
    exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || {
        echo "PostgreSQL server not installed; run this as root (or install sudo)" >&2
        exit 1
    }
    as_root=(sudo -n)
fi
apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >&2
}

echo "installing PostgreSQL from Debian's packages" >&2
"${as_root[@]}" apt-get update -qq >&2
# postgresql-common first, to switch off the cluster that installing a server would create.
apt_install postgresql-common
conf=/etc/postgresql-common/createcluster.conf
if [[ -f $conf ]] && ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=' "$conf"; then
    echo "create_main_cluster = false" | "${as_root[@]}" tee -a "$conf" >/dev/null
fi
apt_install postgresql
# Should a cluster exist all the same (left by an earlier install), do not leave it running.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _; do
        if [[ $status == online* ]]; then
            "${as_root[@]}" pg_ctlcluster "$version" "$cluster" stop >&2 || true
        fi
    done
fi

found=$(bin_dir) || { echo "installed postgresql, but no initdb found" >&2; exit 1; }
echo "$found"

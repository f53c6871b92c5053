#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs it with pytest.
#   Python: this project with its [test] extras (pytest, Playwright's driver, ...).
#   Debian: Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never
#   downloads a browser of its own), Firefox ESR for a call between Chromium and Firefox
#   (driven over WebDriver BiDi by tests/firefox.py), and redis-server for the Redis broker's tests (each
#   test session starts a private one on a free port unless $REDIS_URL is set),
#   PostgreSQL for the store's tests unless $DATABASE_URL is set or one listens on
#   127.0.0.1:5432 (see tests/postgres.sh), and nginx for the tests of deploy/nginx.conf
#   (each runs its own in the foreground on loopback ports; on a machine with systemd the
#   package also starts a system nginx on port 80, which the tests do not use:
#   `sudo systemctl disable --now nginx` stops it).
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k browser`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

bash tests/postgres.sh

exec python3 -m pytest "$@"

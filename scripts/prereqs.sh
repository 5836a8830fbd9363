#!/usr/bin/env bash
# Installs what building and testing dbflow needs beyond a Rust toolchain:
# libclang (pg_query's build runs bindgen) and the PostgreSQL client and server binaries
# (the tests start a throw-away cluster and call the real pg_dump / pg_restore / psql),
# and an S3-compatible server for the object-storage repository tests: moto_server, from
# the `moto[server]` Python package, in a virtualenv of its own (tests/support/s3.rs
# finds it there or on PATH). A pip install takes well under a minute; building an
# S3 server from source with cargo would take several on two cores.
set -euo pipefail

moto_venv="${DBFLOW_MOTO_VENV:-$HOME/.cache/dbflow/moto}"
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$moto_venv/bin/moto_server" ]; then
  echo "installing moto[server] into $moto_venv" >&2
  python3 -m venv "$moto_venv" >&2
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.1' >&2
fi

missing=()
here=$(dirname "$0")
# libclang itself (libclang.so.N / libclang-N.so.N), not libclang-cpp, which some images
# ship alone and bindgen cannot use (scripts/has-libclang.sh decides, and is tested).
ldconfig -p 2>/dev/null | "$here/has-libclang.sh" || compgen -G '/usr/lib/llvm-*/lib/libclang.so.1' >/dev/null || missing+=(libclang1-14 libclang-common-14-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# Tests: strace counts file reads (one read of the migrations per run), man renders the
# manual page, script gives a test a terminal.
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
[ -x /usr/bin/time ] || missing+=(time)   # GNU time measures peak memory in a test
# The site's browser test (tests/site_browser.rs) drives headless Chromium; Debian's
# package is named `chromium` (Ubuntu's is a snap shim, hence the other names).
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
else
  echo "missing packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

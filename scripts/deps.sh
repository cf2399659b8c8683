#!/usr/bin/env bash
# scripts/deps.sh — install every Debian package the build, the daemon and the
# tests need, skipping what is already there. Run as root on Debian 12.
# Usage: scripts/deps.sh [build|test]   (test adds the servers and tools tests start)
set -euo pipefail

# curl and openssl: the README's and the channel guides' examples (make run
# installs only this list); ca-certificates: HTTPS from plugins (Graph
# API, IMAPS), which libcurl only recommends.
build_pkgs=(
  gcc make cmake pkg-config curl openssl ca-certificates
  libuv1-dev libcurl4-openssl-dev libjansson-dev libcjson-dev libsqlite3-dev sqlite3
  libh2o-dev libwslay-dev libssl-dev libsodium-dev libarchive-dev
  libgmime-3.0-dev
)
test_pkgs=(
  check curl procps python3 openssl
  dovecot-imapd dovecot-lmtpd opensmtpd swaks
  chromium
)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
  want+=("${test_pkgs[@]}")
  # The browser tests (tests/browser) run node and npm: Debian's, unless a
  # node is already installed (e.g. NodeSource's, which brings its own npm).
  command -v node >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root or install them with apt-get." >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

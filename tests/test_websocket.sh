#!/usr/bin/env bash
# test_websocket.sh — plugin-held WebSockets (ABI 1.3) through the real
# daemon, driven by tests/ws_e2e.py with the wsecho test plugin.
set -u
exec python3 "${SB_SOURCE_DIR:?}/tests/ws_e2e.py"

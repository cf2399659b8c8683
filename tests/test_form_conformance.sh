#!/usr/bin/env bash
# test_form_conformance.sh — the bundled web form channel (plugins/form)
# passes `switchboard plugins check`, receive-only as it is: every send
# completes once, as a clear failure.
set -u
. "$(dirname "$0")/lib.sh"

SB=${SB_BINARY:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}

# Plausible values the checker cannot guess: an origin and a MIME type.
expect "form.so conforms" 0 '^21 passed, 0 failed: .* conforms to plugin ABI 1\.[0-9]+$' \
  "$SB" plugins check --set allowed_origins=https://www.example.com --set attachment_types=image/ "$PLUGINS/form.so"
expect "its send fails clearly, naming reply_channel" 0 '^PASS send-ok: .*failed a web form channel cannot send; replies go through its reply_channel' \
  "$SB" plugins check --only send-ok "$PLUGINS/form.so"
finish

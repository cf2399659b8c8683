# tests/lib.sh — helpers shared by the script tests (sourced, not run).
# Each check prints "ok - NAME" or "not ok - NAME" (and a "# detail" line);
# `finish` prints the closing "N passed, M failed" line and sets the status.
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "# $2"; }

# check NAME EXPR [DETAIL]: EXPR is evaluated; DETAIL is shown on failure.
check() { if eval "$2"; then ok "$1"; else not_ok "$1" "${3:-}"; fi; }

# expect NAME STATUS GREP CMD...: runs CMD, checks its exit status and that
# its combined output matches GREP (an extended regex; "" to skip).
expect() {
  local name=$1 want=$2 pattern=$3
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ]; then
    not_ok "$name" "exit $rc, wanted $want; output: $out"
  elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
    not_ok "$name" "output lacks /$pattern/: $out"
  else
    ok "$name"
  fi
}

# wait_for EXPR [TENTHS]: evaluates EXPR every 0.1 s until it holds (true)
# or TENTHS tries (default 150) have passed (false).
wait_for() {
  local i
  for i in $(seq 1 "${2:-150}"); do
    eval "$1" && return 0
    sleep 0.1
  done
  return 1
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# finish: the closing line; returns non-zero when a check failed.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

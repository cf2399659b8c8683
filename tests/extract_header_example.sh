#!/usr/bin/env bash
# Extracts the example plugin from the narrative of sdk/include/switchboard/plugin.h
# so the test suite builds it: the manual's example can never stop compiling.
# Usage: extract_header_example.sh HEADER OUT.c
set -euo pipefail
sed -n '/A SMALL COMPLETE PLUGIN/,/Build it with:/p' "$1" \
  | sed '1,/^ \*$/d; /Build it with:/d' \
  | sed 's/^ \*   \{0,1\}//; s/^ \*$//' > "$2"

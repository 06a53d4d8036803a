#!/usr/bin/env bash
# Installs the peer tools the benchmark compares shipkit with, at pinned versions,
# under $SHIPKIT_CACHE/tools (default ~/.cache/shipkit/tools), and prints their paths.
# With no arguments it installs every tool; otherwise the named ones:
#
#   hack/bench/setup.sh ko
#
# Each tool has its own script, hack/bench/setup/<tool>.sh, called with the tools
# directory; its versions match hack/bench/tools.go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
mkdir -p "$cache/tools"
tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
  for f in "$here"/setup/*.sh; do tools+=("$(basename "$f" .sh)"); done
fi
for t in "${tools[@]}"; do
  [ -f "$here/setup/$t.sh" ] || { echo "setup.sh: no tool named $t (see $here/setup)" >&2; exit 2; }
  bash "$here/setup/$t.sh" "$cache/tools"
done

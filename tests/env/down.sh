#!/usr/bin/env bash
# tests/env/down.sh: tear down what tests/env/up.sh started.
#
#   tests/env/down.sh [k8s] [compose] [prom]    (no argument: all three)
#
# Runs compose-down.sh and k8s-down.sh; a failure in one does not skip the other. Always
# exits 0 (failures are logged as warnings), because it is meant for `trap ... EXIT`: with
# `set -e`, a failing EXIT trap would replace the test run's own exit status.
# Removes $RUNBOOK_TESTENV/env.sh, or rewrites it for the stack still up.
# Keeps the built binaries, the PKI, the images and the logs. Safe to run when nothing is up.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

[ $# -gt 0 ] || set -- compose k8s prom
for a in "$@"; do
  case $a in
    compose) "$HERE/compose-down.sh" || log "warning: compose-down.sh failed (exit $?)" ;;
    k8s) "$HERE/k8s-down.sh" || log "warning: k8s-down.sh failed (exit $?)" ;;
    prom) "$HERE/prom-down.sh" || log "warning: prom-down.sh failed (exit $?)" ;;
    *) log "usage: $0 [k8s] [compose] [prom] (ignoring '$a')" ;;
  esac
done

if [ -f "$TE/k8s.env" ] || [ -f "$TE/compose.env" ] || [ -f "$TE/prom.env" ]; then
  {
    echo "# written by tests/env/down.sh: source it to reach the test backends"
    echo "export RUNBOOK_TESTENV=$TE"
    for f in "$TE/k8s.env" "$TE/compose.env" "$TE/prom.env"; do [ ! -f "$f" ] || cat "$f"; done
  } >"$TE/env.sh"
else
  rm -f "$TE/env.sh"
fi
exit 0

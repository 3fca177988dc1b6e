#!/usr/bin/env bash
# tests/env/up.sh: one entry point for the integration-test backends.
#
#   tests/env/up.sh [k8s] [compose] [prom]   (no argument: all three)
#
# k8s:     tests/env/k8s-build.sh (builds once, cached afterwards) + tests/env/k8s-up.sh
# compose: tests/env/compose-up.sh
# prom:    tests/env/prom-up.sh (a real Prometheus scraping the tests' loopback exporters)
# Each part is idempotent: what is already up is left running and only reported.
#
# Writes $RUNBOOK_TESTENV/env.sh, to be sourced by test runs, with every export of the
# stacks that are up (RUNBOOK_TESTENV, then k8s.env and/or compose.env, which include
# RUNBOOK_TESTENV_K8S=1 / RUNBOOK_TESTENV_COMPOSE=1), and prints the same lines on stdout:
#   eval "$(tests/env/up.sh)"      or      tests/env/up.sh && . "$RUNBOOK_TESTENV/env.sh"
# Logs go to stderr. Tear down with tests/env/down.sh (fine in a `trap ... EXIT`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

want_k8s=0 want_compose=0 want_prom=0
[ $# -gt 0 ] || set -- k8s compose prom
for a in "$@"; do
  case $a in
    k8s) want_k8s=1 ;;
    compose) want_compose=1 ;;
    prom) want_prom=1 ;;
    *) die "usage: $0 [k8s] [compose] [prom]" ;;
  esac
done

T0=$(date +%s.%N)
# No env.sh until this start has succeeded: a stale one from an earlier start would send the
# tests to daemons that are not there, and hide why.
rm -f "$TE/env.sh"
# The build first and alone: it may run apt-get, and two apt-gets at once fail on apt's lock.
[ "$want_k8s" = 0 ] || "$HERE/k8s-build.sh"
# Prometheus too may run apt-get: before the parallel part, and it starts in about a second.
if [ "$want_prom" = 1 ]; then "$HERE/prom-up.sh" >/dev/null || die "failed: prom-up.sh (log in $TE/run/prometheus.log)"; fi
# Then both stacks in parallel (saves the ~1-3 s of compose-up while kube-apiserver boots).
# Their exports go to k8s.env / compose.env. On failure, wait for the other one all the same,
# so a caller's `trap down.sh EXIT` never races with a start still in progress.
cpid='' failed=''
if [ "$want_compose" = 1 ]; then
  "$HERE/compose-up.sh" >/dev/null &
  cpid=$!
fi
if [ "$want_k8s" = 1 ]; then "$HERE/k8s-up.sh" >/dev/null || failed+=' k8s-up.sh'; fi
if [ -n "$cpid" ]; then wait "$cpid" || failed+=' compose-up.sh'; fi
[ -z "$failed" ] || die "failed:$failed (logs in $TE/run; tear down with $HERE/down.sh)"

# env.sh: whatever stacks are up now (the *-down.sh scripts delete their .env file), so
# `up.sh compose` while k8s is already up keeps the k8s exports too.
{
  echo "# written by tests/env/up.sh: source it to reach the test backends"
  echo "export RUNBOOK_TESTENV=$TE"
  for f in "$TE/k8s.env" "$TE/compose.env" "$TE/prom.env"; do [ ! -f "$f" ] || cat "$f"; done
} >"$TE/env.sh.tmp"
mv "$TE/env.sh.tmp" "$TE/env.sh"
log "up in $(elapsed "$T0") s; source $TE/env.sh"
grep '^export ' "$TE/env.sh"

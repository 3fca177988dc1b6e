#!/usr/bin/env bash
# tests/env/k8s-down.sh: stop what k8s-up.sh started (fake-kubelet, kube-controller-manager,
# kube-apiserver, etcd, in that order so nothing logs errors about a vanished dependency),
# each by the PID recorded in $RUNBOOK_TESTENV/run/*.pid (TERM, KILL after 15 s), and wait
# until each has exited. Deletes the etcd data (the next start is a fresh cluster); keeps the
# PKI, the kubeconfigs and the logs. Safe to run when nothing is up.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

RUN=$TE/run
stop_pidfile "$RUN/fake-kubelet.pid" fake-kubelet.sh
stop_pidfile "$RUN/kube-controller-manager.pid" kube-controller-manager
stop_pidfile "$RUN/kube-apiserver.pid" kube-apiserver
stop_pidfile "$RUN/etcd.pid" etcd
rm -rf "$RUN/etcd-data" "$RUN/api.url" "$TE/k8s.env"
log "k8s test control plane stopped"

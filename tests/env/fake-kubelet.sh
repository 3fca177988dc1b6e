#!/usr/bin/env bash
# tests/env/fake-kubelet.sh: stand-in for a kubelet, started in the background by k8s-up.sh.
#
# The test control plane has no scheduler, no kubelet and no container runtime, so the pods
# of a Deployment would stay Pending and `kubectl rollout status` (or an engine waiting for
# availability) would never finish. About every 0.5 s this lists the Pending pods and marks
# each one Running + Ready through the pod `status` subresource: phase, the four conditions
# and one running, ready containerStatus per container (the deployment controller counts
# ready replicas from these). Nothing is ever scheduled or run; the image is never pulled.
#
# Listing uses kubectl's jsonpath (no JSON tool needed, any kubectl version works); the
# PATCH uses curl so it does not depend on kubectl's `--subresource` flag (kubectl >= 1.24).
# Needs: KUBECONFIG, FK_SERVER (API URL), FK_CA (CA file), FK_TOKEN_FILE (admin token).
# No `set -e`: one failed list or patch must not end the loop; it is retried next round.
set -uo pipefail
: "${KUBECONFIG:?}" "${FK_SERVER:?}" "${FK_CA:?}" "${FK_TOKEN_FILE:?}"
TOKEN=$(cat "$FK_TOKEN_FILE")

# Sleep in a child that we wait for, so TERM from k8s-down.sh ends the loop at once.
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT

# mark_ready NAMESPACE POD "ctr=image,ctr=image,"
mark_ready() {
  local ns=$1 pod=$2 now statuses='' c
  local -a containers
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  IFS=, read -ra containers <<<"$3"
  for c in "${containers[@]}"; do
    [ -n "$c" ] || continue
    statuses+="${statuses:+,}{\"name\":\"${c%%=*}\",\"image\":\"${c#*=}\",\"imageID\":\"\",\"ready\":true,"
    statuses+="\"started\":true,\"restartCount\":0,\"state\":{\"running\":{\"startedAt\":\"$now\"}}}"
  done
  local cond='' t
  for t in PodScheduled Initialized ContainersReady Ready; do
    cond+="${cond:+,}{\"type\":\"$t\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}"
  done
  curl -sS -o /dev/null --max-time 5 --cacert "$FK_CA" -H "Authorization: Bearer $TOKEN" \
    -X PATCH -H 'Content-Type: application/merge-patch+json' \
    "$FK_SERVER/api/v1/namespaces/$ns/pods/$pod/status" \
    -d "{\"status\":{\"phase\":\"Running\",\"startTime\":\"$now\",\"conditions\":[$cond],\"containerStatuses\":[$statuses]}}" ||
    echo "$(date +%T) patching $ns/$pod failed" >&2
}

while :; do
  pods=$(kubectl get pods --all-namespaces --field-selector=status.phase=Pending --request-timeout=5s \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{range .spec.containers[*]}{.name}{"="}{.image}{","}{end}{"\n"}{end}' \
    2>/dev/null) || pods=
  while read -r ns pod containers; do
    [ -n "$pod" ] && mark_ready "$ns" "$pod" "$containers"
  done <<<"$pods"
  sleep 0.5 &
  child=$!
  wait "$child"
  child=
done

#!/usr/bin/env bash
# tests/env/k8s-up.sh: start a throw-away Kubernetes v1.20.2 control plane on 127.0.0.1.
#
#  - PKI, made once and kept in $RUNBOOK_TESTENV/pki: a CA, a kube-apiserver serving cert
#    signed by it (SAN IP:127.0.0.1 and DNS:localhost: clients check the host name, rustls
#    included), a service-account key pair, and a static token file with two users:
#      runbook-admin  group system:masters (full rights)
#      nobody         no group but the implicit system:authenticated: RBAC forbids almost
#                     everything, for tests that must see a 403 Forbidden
#  - Two kubeconfigs with the CA embedded and a bearer token (no client certificates: the
#    simplest thing for any client): $RUNBOOK_TESTENV/kubeconfig (context runbook-test) and
#    $RUNBOOK_TESTENV/kubeconfig-noperm (context runbook-noperm). Namespace: default.
#  - Starts etcd (fresh data dir every time, --unsafe-no-fsync: speed over durability),
#    kube-apiserver (RBAC; ServiceAccount admission off so pods need no token Secret),
#    kube-controller-manager (deployment, replicaset, garbagecollector, namespace
#    controllers only) and fake-kubelet.sh. Waits for /readyz and for the deployment
#    controller's caches, so a Deployment created right after this rolls out.
#  - PIDs in $RUNBOOK_TESTENV/run/*.pid, logs in $RUNBOOK_TESTENV/run/*.log.
#  - Prints the exports on stdout (use: eval "$(tests/env/k8s-up.sh)") and writes them to
#    $RUNBOOK_TESTENV/k8s.env. When everything is already up and ready it only prints them.
#
# Ports: RUNBOOK_K8S_API_PORT (16443), RUNBOOK_ETCD_PORT (12379), RUNBOOK_ETCD_PEER_PORT
# (12380): given explicitly, exactly that port (fails if taken); else the first free port at
# or above the default, so two state directories can run side by side.
# Needs: tests/env/k8s-build.sh first (binaries, etcd, openssl, curl, kubectl).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

BIN=$TE/bin RUN=$TE/run PKI=$TE/pki
KCFG=$TE/kubeconfig KCFG_NOPERM=$TE/kubeconfig-noperm
for c in "$BIN/kube-apiserver" "$BIN/kube-controller-manager"; do
  [ -x "$c" ] || die "$c missing: run tests/env/k8s-build.sh first"
done
for c in etcd openssl curl kubectl; do
  command -v "$c" >/dev/null || die "$c not found: run tests/env/k8s-build.sh first"
done

readyz() { # $1 = API URL; "ok" once every post-start hook ran (RBAC bootstrap roles included)
  [ "$(curl -sf --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/admin.token")" \
    "$1/readyz" 2>/dev/null)" = ok ]
}
print_env() {
  cat >"$TE/k8s.env" <<EOT
export KUBECONFIG=$KCFG
export RUNBOOK_TEST_KUBECONFIG=$KCFG
export RUNBOOK_TEST_KUBECONFIG_NOPERM=$KCFG_NOPERM
export RUNBOOK_TESTENV_K8S=1
EOT
  cat "$TE/k8s.env"
}

# --- already up? ---
if pidfile_alive "$RUN/etcd.pid" etcd && pidfile_alive "$RUN/kube-apiserver.pid" kube-apiserver &&
  pidfile_alive "$RUN/kube-controller-manager.pid" kube-controller-manager &&
  pidfile_alive "$RUN/fake-kubelet.pid" fake-kubelet.sh && [ -f "$RUN/api.url" ] &&
  [ -s "$KCFG_NOPERM" ] && readyz "$(cat "$RUN/api.url")"; then
  log "k8s already up at $(cat "$RUN/api.url")"
  print_env
  exit 0
fi
# Anything half-started or left over from a crash goes first (by recorded PID only).
"$HERE/k8s-down.sh" >/dev/null 2>&1 || true
T0=$(date +%s.%N)

# --- PKI: certificates once ---
if [ ! -s "$PKI/ca.crt" ] || [ ! -s "$PKI/apiserver.crt" ] || [ ! -s "$PKI/apiserver.key" ] || [ ! -s "$PKI/sa.pub" ]; then
  log "generating the PKI in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    umask 077
    cat >ca.cnf <<'EOT'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = runbook-test-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOT
    # A separate leaf (not a self-signed server cert): webpki/rustls reject a CA cert used as
    # the server's end-entity cert. The in-cluster names are there for completeness only.
    cat >apiserver.ext <<'EOT'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
EOT
    openssl req -x509 -config ca.cnf -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 644 ca.crt
  )
fi
# --- PKI: static tokens (each made once; the file is read by kube-apiserver at start) ---
# Format: token,user,uid[,"group1,group2"]. nobody has no group column: it only gets
# system:authenticated, whose default roles allow discovery and self-review, nothing else.
(
  umask 077
  for u in admin noperm; do [ -s "$PKI/$u.token" ] || openssl rand -hex 24 >"$PKI/$u.token"; done
  {
    echo "$(cat "$PKI/admin.token"),runbook-admin,runbook-admin,\"system:masters\""
    echo "$(cat "$PKI/noperm.token"),nobody,nobody"
  } >"$PKI/tokens.csv"
)

# --- ports ---
EP=${RUNBOOK_ETCD_PORT:-$(free_port 12379)}
PP=${RUNBOOK_ETCD_PEER_PORT:-$(free_port 12380 "$EP")}
AP=${RUNBOOK_K8S_API_PORT:-$(free_port 16443 "$EP" "$PP")}
for p in "$EP" "$PP" "$AP"; do port_in_use "$p" && die "port $p is already in use"; done
API=https://127.0.0.1:$AP
echo "$API" >"$RUN/api.url"

# --- kubeconfigs (rewritten each start: the port may differ) ---
write_kubeconfig() { # FILE CONTEXT USER TOKEN_FILE
  local tmp=$1.tmp
  (
    umask 077 # holds a bearer token
    cat >"$tmp" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: runbook-test
  cluster:
    server: $API
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $3
  user:
    token: $(cat "$4")
contexts:
- name: $2
  context:
    cluster: runbook-test
    user: $3
    namespace: default
current-context: $2
EOT
  )
  mv "$tmp" "$1"
}
write_kubeconfig "$KCFG" runbook-test runbook-admin "$PKI/admin.token"
write_kubeconfig "$KCFG_NOPERM" runbook-noperm nobody "$PKI/noperm.token"

fail_with_log() { # NAME MESSAGE: show the daemon's log, stop everything, fail
  tail -n 25 "$RUN/$1.log" >&2
  "$HERE/k8s-down.sh" >/dev/null 2>&1 || true
  die "$2"
}

# --- etcd ---
rm -rf "$RUN/etcd-data"
start_bg etcd etcd --name default --data-dir "$RUN/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
  --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
  --initial-cluster "default=http://127.0.0.1:$PP" --unsafe-no-fsync --logger=zap
for ((i = 0; ; i++)); do
  [[ "$(curl -sf --max-time 2 "http://127.0.0.1:$EP/health" 2>/dev/null)" == *'"health":"true"'* ]] && break
  started_alive etcd || fail_with_log etcd "etcd exited"
  ((i < 300)) || fail_with_log etcd "etcd not healthy after 30 s"
  sleep 0.1
done

# --- kube-apiserver ---
# --insecure-port=0: no unauthenticated HTTP port. --endpoint-reconciler-type=none: no
# kubernetes Service endpoints to maintain (nothing runs in-cluster).
start_bg kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$EP" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$AP" --insecure-port=0 \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" --authorization-mode=RBAC \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/24 \
  --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none --profiling=false --v=0
for ((i = 0; ; i++)); do
  readyz "$API" && break
  started_alive kube-apiserver || fail_with_log kube-apiserver "kube-apiserver exited"
  # 60 s is typical of a loaded 2-core machine; apt or a build running beside it can double it.
  ((i < 900)) || fail_with_log kube-apiserver "kube-apiserver not ready after 180 s"
  sleep 0.2
done
log "kube-apiserver ready at $API after $(elapsed "$T0") s"

# --- kube-controller-manager ---
# --port=0 --secure-port=0: no serving ports to collide with; --leader-elect=false: one
# instance, no lease round-trips before it starts working.
start_bg kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$KCFG" \
  --controllers=deployment,replicaset,garbagecollector,namespace --leader-elect=false \
  --port=0 --secure-port=0 --use-service-account-credentials=false --v=1

# --- fake kubelet ---
start_bg fake-kubelet env FK_SERVER="$API" FK_CA="$PKI/ca.crt" FK_TOKEN_FILE="$PKI/admin.token" \
  KUBECONFIG="$KCFG" bash "$HERE/fake-kubelet.sh"

for ((i = 0; ; i++)); do
  grep -q 'Caches are synced for deployment' "$RUN/kube-controller-manager.log" 2>/dev/null && break
  started_alive kube-controller-manager ||
    fail_with_log kube-controller-manager "kube-controller-manager exited"
  ((i < 300)) || fail_with_log kube-controller-manager "deployment controller not running after 30 s"
  sleep 0.1
done
started_alive fake-kubelet || fail_with_log fake-kubelet "fake-kubelet.sh exited"
log "k8s up in $(elapsed "$T0") s (api $API, etcd 127.0.0.1:$EP)"
print_env

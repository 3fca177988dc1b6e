#!/usr/bin/env bash
# tests/env/podman-health.sh: healthcheck ticker, started in the background by compose-up.sh.
#
# Podman runs a container's HEALTHCHECK from a systemd timer. Without systemd (CI containers,
# this VM) it never runs: a service with a healthcheck stays "starting" forever, and
# `docker compose up --wait` or `depends_on: {condition: service_healthy}` hang. So every
# second this runs `podman healthcheck run` for starting or unhealthy containers, and every
# 10 s for healthy ones. (The configured interval is therefore not honoured.)
# Needs CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (those of the service).
# No `set -e`: a failing check (container just removed) must not end the loop.
set -uo pipefail
: "${CONTAINERS_CONF:?}" "${CONTAINERS_STORAGE_CONF:?}"
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT

check() { # $@ = podman ps filters; checks run in parallel, a slow one does not delay others
  local id
  for id in $(podman ps -q "$@" 2>/dev/null); do
    podman healthcheck run "$id" >/dev/null 2>&1 &
  done
  wait
}

for ((tick = 0; ; tick++)); do
  check --filter health=starting --filter health=unhealthy
  ((tick % 10)) || check --filter health=healthy
  sleep 1 &
  child=$!
  wait "$child"
  child=
done

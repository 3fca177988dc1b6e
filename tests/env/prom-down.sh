#!/usr/bin/env bash
# tests/env/prom-down.sh: undo prom-up.sh. Stops Prometheus by its recorded PID, removes the
# test targets and prom.env. Keeps the TSDB (the next start reuses it). Safe when nothing is up.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

stop_pidfile "$TE/run/prometheus.pid" prometheus
rm -f "$TE/prom.env" "$TE/prometheus/targets/"*.json 2>/dev/null || true
log "prometheus stopped"

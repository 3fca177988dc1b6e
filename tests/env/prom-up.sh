#!/usr/bin/env bash
# tests/env/prom-up.sh: a real Prometheus (Debian's `prometheus` package) for the tests.
#
#  - apt: prometheus (only the binary is used: the packaged service is never started).
#  - Runs `prometheus` by hand on 127.0.0.1 (port 19090 or the next free one; force one with
#    RUNBOOK_PROM_PORT), storage in $RUNBOOK_TESTENV/prometheus/data, 1 s scrape interval.
#  - Targets come from files: a test starts its own loopback exporter (an HTTP server in the
#    test process whose metrics text it sets) and writes
#    $RUNBOOK_TESTENV/prometheus/targets/<name>.json ([{"targets":["127.0.0.1:PORT"],
#    "labels":{"test":"<name>"}}]); Prometheus picks it up within a second (file_sd,
#    refresh 1s) and every series of that exporter carries the label test="<name>", so
#    parallel tests never read each other's series. Removing the file ends the scrapes (the
#    series go stale).
#  - PID/log in $RUNBOOK_TESTENV/run/prometheus.{pid,log}; writes prom.env with
#    RUNBOOK_TEST_PROMETHEUS_URL, RUNBOOK_TEST_PROMETHEUS_TARGETS, RUNBOOK_TESTENV_PROM=1 and
#    prints it. When Prometheus is already up it only prints the exports.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

P=$TE/prometheus
PIDF=$TE/run/prometheus.pid

if pidfile_alive "$PIDF" prometheus && [ -f "$TE/prom.env" ]; then
  cat "$TE/prom.env"
  exit 0
fi

ensure_pkgs prometheus curl
BIN=$(command -v prometheus || echo /usr/bin/prometheus)
[ -x "$BIN" ] || die "no prometheus binary after installing the package"

mkdir -p "$P/data" "$P/targets"
PORT=${RUNBOOK_PROM_PORT:-$(free_port 19090)}
cat >"$P/prometheus.yml" <<EOT
# written by tests/env/prom-up.sh
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: runbook-tests
    file_sd_configs:
      - files: ["$P/targets/*.json"]
        refresh_interval: 1s
EOT
start_bg prometheus "$BIN" \
  --config.file="$P/prometheus.yml" \
  --storage.tsdb.path="$P/data" \
  --storage.tsdb.retention.time=1d \
  --web.listen-address="127.0.0.1:$PORT" \
  --web.enable-lifecycle
URL="http://127.0.0.1:$PORT"
for ((i = 0; i < 300; i++)); do
  started_alive prometheus || { tail -n 20 "$TE/run/prometheus.log" >&2; die "prometheus exited"; }
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/-/ready" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/-/ready" || die "prometheus not ready on $PORT (log: $TE/run/prometheus.log)"
{
  echo "export RUNBOOK_TEST_PROMETHEUS_URL=$URL"
  echo "export RUNBOOK_TEST_PROMETHEUS_TARGETS=$P/targets"
  echo "export RUNBOOK_TESTENV_PROM=1"
} >"$TE/prom.env"
log "prometheus $("$BIN" --version 2>&1 | awk 'NR==1 {print $3}') up on $URL"
cat "$TE/prom.env"

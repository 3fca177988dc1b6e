# shellcheck shell=bash
# tests/env/lib.sh: helpers shared by the test-environment scripts (sourced, never run).
#
# Sets TE, the state directory ($RUNBOOK_TESTENV, default /var/tmp/runbook-testenv, made
# absolute and exported so that child scripts agree on it), and offers:
#   log / die          messages on stderr (stdout is reserved for `export` lines)
#   ensure_pkgs P...   apt-get install the Debian packages that are missing
#   port_in_use / free_port
#   pid_alive / pidfile_alive / started_alive / start_bg / stop_pidfile
#   elapsed T0         seconds since T0 (a `date +%s.%N` value), one decimal
#
# Everything the scripts start is tracked by PID files in $TE/run and stopped by those PIDs
# only (checking the command line first, so a recycled PID is never killed): never by name,
# because other environments (another RUNBOOK_TESTENV, a developer's own podman) may run.

TE=${RUNBOOK_TESTENV:-/var/tmp/runbook-testenv}
mkdir -p "$TE/bin" "$TE/run" "$TE/cache"
TE=$(cd "$TE" && pwd)
export RUNBOOK_TESTENV=$TE

log() { printf '[testenv %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# Install the given Debian packages if any is missing. `apt-get update` runs only then, so a
# machine that already has everything never touches the network.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >"$TE/cache/apt.log" 2>&1 || { tail -n 20 "$TE/cache/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

# Does something accept TCP connections on 127.0.0.1:$1? (bash's /dev/tcp: no extra tool)
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Print $1 if that port is free, else the next free one above it. Ports listed after $1 are
# skipped too: they are already promised to another daemon of the same start-up.
free_port() {
  local p=$1; shift
  while port_in_use "$p" || [[ " $* " == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}

# PID $1 exists and is not a zombie. (Where PID 1 reaps orphans slowly, a daemon that has
# exited lingers as <defunct>: it counts as gone.)
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# The PID recorded in file $1 is alive and its command line contains $2 (guards against a
# PID that was reused by an unrelated process after a reboot or a crash).
pidfile_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  pid_alive "$pid" && [[ "$(cmdline_of "$pid")" == *"$2"* ]]
}

# started_alive NAME: the daemon that `start_bg NAME` started from this same shell has not
# exited. For the wait loops right after a start: no command-line check, because while the
# kernel loads the program (execve from a cold page cache can take a second, the process in
# state D) /proc/PID/cmdline reads empty, and pidfile_alive would call a starting daemon gone.
# The PID cannot belong to anything else here: it is this shell's own child, recorded an
# instant ago.
started_alive() { pid_alive "$(cat "$TE/run/$1.pid" 2>/dev/null)"; }

# The command line of PID $1, arguments separated by spaces; empty if it is gone. (Read into
# a string, not piped to `grep -q`: with pipefail an early-exiting grep can fail the pipe.)
cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# start_bg NAME CMD...: run CMD detached (own session via setsid, so a Ctrl-C or the end of
# the calling shell does not hit it; no stdin; output to $TE/run/NAME.log) and record its PID
# in $TE/run/NAME.pid.
start_bg() {
  local name=$1; shift
  setsid "$@" </dev/null >"$TE/run/$name.log" 2>&1 &
  echo $! >"$TE/run/$name.pid"
}

# stop_pidfile FILE MATCH [SECONDS]: stop the process recorded in FILE if its command line
# contains MATCH: TERM, then KILL after SECONDS (15). Waits until it has exited, removes FILE.
stop_pidfile() {
  local f=$1 match=$2 wait_s=${3:-15} pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if pidfile_alive "$f" "$match"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then
      log "$(basename "$f" .pid) (pid $pid) ignored TERM for ${wait_s}s: sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$f"
}

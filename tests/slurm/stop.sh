#!/usr/bin/env bash
# Stop the SLURM test cluster daemons that tests/slurm/start.sh started, and only those:
# it reads the names in $STATE_DIR/started and each daemon's PID file, checks that the PID
# still belongs to a process of that name, and sends it SIGTERM (SIGKILL after 30 s).
# Daemons that ran before start.sh (and so are not listed) are left alone.
set -euo pipefail

STATE_DIR=${NANOFORGE_SLURM_STATE_DIR:-/run/nanoforge-slurm}

log() { echo "[slurm/stop] $*"; }

if [ ! -s "$STATE_DIR/started" ]; then
    log "nothing to stop: $STATE_DIR/started lists no daemon started by start.sh"
    exit 0
fi

# Stop in the reverse order of start: slurmd, slurmctld, then munged.
for name in slurmd slurmctld munged; do
    grep -qx "$name" "$STATE_DIR/started" || continue
    pidfile="$STATE_DIR/$name.pid"
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$pid" ] || [ ! -r "/proc/$pid/comm" ] || [ "$(cat "/proc/$pid/comm")" != "$name" ]; then
        log "$name (pid ${pid:-?}) no longer runs"
    else
        kill -TERM "$pid"
        for _ in $(seq 1 300); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then
            log "$name (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
            kill -KILL "$pid" || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
    sed -i "/^$name\$/d" "$STATE_DIR/started"
done

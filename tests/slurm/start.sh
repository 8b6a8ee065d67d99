#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on localhost for the workflow's SLURM test
# (tests/test_slurm.py) and for trying the slurm profile by hand.
#
# Runs as root on a Debian machine. Idempotent: daemons that already run are left alone,
# and a second call only waits for the node and prints the summary.
#   1. installs slurm-wlm and munge with apt-get when they are missing (apt-get update only
#      when apt does not know the package or the install fails with a stale list);
#   2. creates the munge key if missing and starts munged as user munge;
#   3. writes /etc/slurm/slurm.conf from tests/slurm/slurm.conf.in (CPUs from nproc,
#      RealMemory below the machine's, no accounting, MinJobAge=300);
#   4. starts slurmctld and slurmd as root with their PID files in the state directory;
#   5. waits until `sinfo` shows the node idle and prints a summary.
# The daemons it starts are listed in $STATE_DIR/started; tests/slurm/stop.sh stops only
# those, by their PID files.
#
# Environment: NANOFORGE_SLURM_STATE_DIR (default /run/nanoforge-slurm),
#              NANOFORGE_SLURM_PARTITION (default main),
#              NANOFORGE_SLURM_FORCE=1 to replace an /etc/slurm/slurm.conf not written here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${NANOFORGE_SLURM_STATE_DIR:-/run/nanoforge-slurm}
PARTITION=${NANOFORGE_SLURM_PARTITION:-main}
CONF=/etc/slurm/slurm.conf
MARKER=NANOFORGE-TEST-CLUSTER
WAIT_S=${NANOFORGE_SLURM_WAIT_S:-90}
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "[slurm/start] $*"; }
die() { echo "[slurm/start] error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"

# --- 1. packages -----------------------------------------------------------------------
missing_tools() {
    local t
    for t in slurmctld slurmd sinfo sbatch squeue scontrol munged munge unmunge; do
        command -v "$t" >/dev/null 2>&1 || { echo "$t"; return 0; }
    done
    return 1
}

if missing=$(missing_tools); then
    command -v apt-get >/dev/null || die "'$missing' is missing and apt-get is not available: install slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    log "installing slurm-wlm and munge with apt-get ('$missing' not found)"
    candidate=$(apt-cache policy slurm-wlm 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        log "apt does not know slurm-wlm yet: apt-get update"
        apt-get update -q
    fi
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge; then
        log "install failed; retrying after apt-get update"
        apt-get update -q
        apt-get install -y -q --no-install-recommends slurm-wlm munge
    fi
    missing_tools >/dev/null && die "still missing after apt-get install: $(missing_tools)"
fi

mkdir -p "$STATE_DIR"
chmod 0755 "$STATE_DIR"
# One start.sh at a time (two test sessions may call it together). The daemons must not
# inherit the lock's file descriptor (9>&- below), or they would hold the lock forever.
exec 9>"$STATE_DIR/lock"
flock -w 300 9 || die "another start.sh holds $STATE_DIR/lock"
touch "$STATE_DIR/started"

# pid_running NAME: the PID of a live process called NAME (exact), if any. Zombies are
# skipped: daemonizing leaves short-lived parents that PID 1 may reap late.
pid_running() {
    local p
    for p in $(pgrep -x "$1" || true); do
        if [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c1)" != Z ] && [ -d "/proc/$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# record NAME PIDFILE: remember that this script started NAME.
record() {
    [ "$2" -ef "$STATE_DIR/$1.pid" ] || cp "$2" "$STATE_DIR/$1.pid"
    grep -qx "$1" "$STATE_DIR/started" || echo "$1" >>"$STATE_DIR/started"
}

# wait_pidfile NAME FILE: wait until FILE names a live process called NAME.
wait_pidfile() {
    local i p
    for i in $(seq 1 100); do
        if [ -s "$2" ]; then
            p=$(cat "$2")
            if [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = "$1" ]; then
                return 0
            fi
        fi
        sleep 0.1
    done
    return 1
}

started_now=()

# --- 2. munge ----------------------------------------------------------------------------
if pid=$(pid_running munged) && [ -n "$pid" ]; then
    log "munged already runs (pid $pid)"
else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged 9>&-
    wait_pidfile munged /run/munge/munged.pid || die "munged did not start (see /var/log/munge/munged.log)"
    record munged /run/munge/munged.pid
    started_now+=(munged)
    log "started munged (pid $(cat "$STATE_DIR/munged.pid"))"
fi
munge -n | unmunge >/dev/null || die "munge does not work: 'munge -n | unmunge' failed"

# --- 3. slurm.conf -----------------------------------------------------------------------
ctld_pid=$(pid_running slurmctld || true)
slurmd_pid=$(pid_running slurmd || true)
if [ -z "$ctld_pid" ] && [ -z "$slurmd_pid" ]; then
    if [ -e "$CONF" ] && ! grep -q "$MARKER" "$CONF" && [ "${NANOFORGE_SLURM_FORCE:-0}" != 1 ]; then
        die "$CONF exists and was not written by this script; move it away or set NANOFORGE_SLURM_FORCE=1"
    fi
    cpus=$(nproc)
    mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # Below the machine's memory, or slurmd drains the node for "Low RealMemory".
    real_mb=$((mem_total_mb * 9 / 10))
    [ "$real_mb" -gt 1024 ] || die "too little memory for the test cluster: ${mem_total_mb} MB"
    mkdir -p /etc/slurm "$STATE_DIR/ctld" "$STATE_DIR/d"
    sed -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@CPUS@|$cpus|g" \
        -e "s|@REAL_MEMORY_MB@|$real_mb|g" -e "s|@PARTITION@|$PARTITION|g" \
        "$HERE/slurm.conf.in" >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    log "wrote $CONF (CPUs=$cpus RealMemory=${real_mb}MB partition=$PARTITION)"
fi

# --- 4. slurmctld and slurmd -----------------------------------------------------------
if [ -n "$ctld_pid" ]; then
    log "slurmctld already runs (pid $ctld_pid)"
else
    rm -f "$STATE_DIR/slurmctld.pid"
    slurmctld 9>&-
    wait_pidfile slurmctld "$STATE_DIR/slurmctld.pid" \
        || die "slurmctld did not start; see $STATE_DIR/slurmctld.log"
    record slurmctld "$STATE_DIR/slurmctld.pid"
    started_now+=(slurmctld)
    log "started slurmctld (pid $(cat "$STATE_DIR/slurmctld.pid"))"
fi
if [ -n "$slurmd_pid" ]; then
    log "slurmd already runs (pid $slurmd_pid)"
else
    rm -f "$STATE_DIR/slurmd.pid"
    slurmd -N localhost 9>&-
    wait_pidfile slurmd "$STATE_DIR/slurmd.pid" || die "slurmd did not start; see $STATE_DIR/slurmd.log"
    record slurmd "$STATE_DIR/slurmd.pid"
    started_now+=(slurmd)
    log "started slurmd (pid $(cat "$STATE_DIR/slurmd.pid"))"
fi

# --- 5. wait for the node --------------------------------------------------------------
state=""
resumed=0
for i in $(seq 1 $((WAIT_S * 2))); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null | head -n1 || true)
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        *drain* | down*)
            if [ "$resumed" = 0 ]; then
                log "node is '$state'; resuming it"
                scontrol update NodeName=localhost State=RESUME || true
                resumed=1
            fi
            ;;
    esac
    sleep 0.5
done
case "$state" in
    idle | mixed | allocated | completing) ;;
    *) die "node 'localhost' is '${state:-unknown}' after ${WAIT_S}s; see $STATE_DIR/slurmctld.log and $STATE_DIR/slurmd.log ($(scontrol show node localhost 2>/dev/null | grep -o 'Reason=.*' || true))" ;;
esac

echo "----------------------------------------------------------------------"
echo "SLURM test cluster is up: $(sinfo --version)"
echo "  node:        $(sinfo -h -n localhost -o '%N state=%T cpus=%c memory=%mMB partition=%P')"
echo "  config:      $CONF"
echo "  state dir:   $STATE_DIR (PID files, logs)"
echo "  started now: ${started_now[*]:-nothing (all daemons already ran)}"
echo "  stop with:   bash tests/slurm/stop.sh (stops only: $(tr '\n' ' ' <"$STATE_DIR/started"))"
echo "----------------------------------------------------------------------"

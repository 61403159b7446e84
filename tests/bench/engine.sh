#!/bin/bash
# Engine benchmark: system-docker vs runc vs Debian's dockerd, side by side in ONE run.
#
#   tests/bench/engine.sh            (as root; `make bench` runs it after `make release fixtures`)
#
# Measures (medians and ratios; a benchmark, not a test: targets are printed, never enforced):
#   1. `run --rm busybox true` latency: system-docker vs `runc run` of the fixture bundle vs
#      `docker run --rm --network none` on dockerd. Runs are interleaved round-robin so drift in
#      machine load hits all three alike.
#   2. idle memory: our daemon vs dockerd + its containerd (RSS from smaps_rollup, and PSS).
#   3. per-container memory with $BENCH_CONTAINERS `sleep` containers (engine + shims, delta / N),
#      and `ps` latency with that many containers.
#   4. a markdown summary for the README.
# dockerd runs inside a network namespace this script creates, so it never touches the host's
# network. Everything started here is stopped by PID and everything created is removed, also on
# failure or Ctrl-C (trap). Exit status is non-zero if any step fails.
#
# Knobs (environment): BENCH_N (timed runs, 20), BENCH_WARMUP (2), BENCH_CONTAINERS (100),
# BENCH_PS_N (10), BENCH_SKIP_DOCKERD=1 (ours and runc only).
set -Eeuo pipefail

N=${BENCH_N:-20}
WARMUP=${BENCH_WARMUP:-2}
NCONT=${BENCH_CONTAINERS:-100}
PS_N=${BENCH_PS_N:-10}
SKIP_DOCKERD=${BENCH_SKIP_DOCKERD:-0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SD=$ROOT/target/release/system-docker
FIX=$ROOT/target/fixtures
DOCKER=/usr/local/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker || echo docker)
BENCHPY=$HERE/bench.py
T0=$(date +%s)

say() { printf '%s\n' "$*"; }
step() { printf '\n[%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { echo "engine.sh: error: $*" >&2; exit 1; }
trap 'echo "engine.sh: error: line $LINENO: \`$BASH_COMMAND\` failed" >&2' ERR

[ "$(id -u)" = 0 ] || die "run as root (namespaces, overlayfs, cgroups)"
for tool in runc dockerd ip nsenter python3 timeout setsid; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (make deps installs docker.io runc)"
done
[ -x "$DOCKER" ] || die "missing the docker CLI"

if [ ! -x "$SD" ]; then
    step "building system-docker (release)"
    (cd "$ROOT" && timeout 1200 cargo build --release -p system-docker)
fi
if [ ! -f "$FIX/busybox.tar" ] || [ ! -f "$FIX/bundle/config.json" ]; then
    step "building fixtures"
    timeout 600 "$ROOT/tests/fixtures/build-images.sh" "$FIX"
fi

# Short path: unix socket paths (containerd's lives under the exec-root) must stay < 108 bytes.
TMP=$(mktemp -d /tmp/rosb.XXXXXX)
chmod 755 "$TMP"
RES=$TMP/results.json
PROBLEMS=$TMP/problems
: >"$PROBLEMS"
NS=rosbench-$$
NS_CREATED=0
SD_PID=
DD_PID=
export DOCKER_CONFIG=$TMP/docker-config DOCKER_CLI_HINTS=false
unset DOCKER_HOST DOCKER_CONTEXT

ours() { "$SD" -H "unix://$TMP/sd.sock" "$@"; }
dk() { "$DOCKER" -H "unix://$TMP/d.sock" "$@"; }
problem() { printf '%s\n' "$*" >>"$PROBLEMS"; echo "  PROBLEM: $*" >&2; }

# A setup step on our engine (never a timed run): our client first; if it fails, record the
# failure and retry with the stock docker CLI against the same socket.
ours_setup() {
    local out
    if out=$(timeout 60 "$SD" -H "unix://$TMP/sd.sock" "$@" 2>&1); then
        printf '%s' "$out"
        return 0
    fi
    problem "system-docker $* failed: ${out:0:600}"
    echo "system-docker $1 -> fell back to docker CLI" >>"$TMP/fallbacks"
    timeout 60 "$DOCKER" -H "unix://$TMP/sd.sock" "$@"
}

alive() { # a process exists and is not a zombie
    local s
    s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "${s:0:1}" != Z ]
}

wait_until() { # SECONDS DESCRIPTION CMD... : poll CMD until it succeeds, or fail at the deadline
    # (or as soon as process $WATCH, if set, is gone)
    local secs=$1 what=$2 end
    shift 2
    end=$(($(date +%s%N) + secs * 1000000000))
    until "$@" >/dev/null 2>&1; do
        if [ -n "${WATCH:-}" ] && ! alive "$WATCH"; then
            echo "engine.sh: process $WATCH exited while waiting for: $what" >&2
            return 1
        fi
        if [ "$(date +%s%N)" -gt "$end" ]; then
            echo "engine.sh: timed out after ${secs}s waiting for: $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

descendants() { # PID... : the PIDs and all their descendants
    ps -eo pid=,ppid= | awk -v roots="$*" '
        { kids[$2] = kids[$2] " " $1 }
        END { n = split(roots, q, " "); for (i = 1; i <= n; i++) { p = q[i]; print p;
              m = split(kids[p], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] } }'
}

tmp_procs() { # PIDs whose command line mentions $TMP/ (shims, containerd), minus this script
    local d p c
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = $$ ] && continue
        c=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
        case $c in *"$TMP/"*) echo "$p" ;; esac
    done
}

stop_pid() { # PID SECONDS : SIGTERM, wait (polling) up to SECONDS, then SIGKILL
    local pid=$1 secs=$2 end
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    end=$(($(date +%s) + secs))
    while alive "$pid" && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
    if alive "$pid"; then
        echo "  cleanup: $pid ignored SIGTERM for ${secs}s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? ids pids p m
    [ -n "$SIG_RC" ] && rc=$SIG_RC
    exec 1>&7 2>&8 # a signal can arrive while a redirection (>/dev/null) is in force
    trap - EXIT TERM ERR
    trap '' INT
    set +e
    step "cleanup"
    # Our engine: remove containers through the API, stop the daemon, then kill stragglers.
    if [ -n "$SD_PID" ] && alive "$SD_PID"; then
        ids=$(timeout 20 "$SD" -H "unix://$TMP/sd.sock" ps -aq 2>/dev/null)
        [ -n "$ids" ] && { timeout 120 "$SD" -H "unix://$TMP/sd.sock" rm -f $ids >/dev/null ||
            timeout 120 "$DOCKER" -H "unix://$TMP/sd.sock" rm -f $ids >/dev/null; }
        pids=$(descendants "$SD_PID" | grep -vx "$SD_PID")
        stop_pid "$SD_PID" 15
        for p in $pids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    fi
    # runc: containers that a failed `runc run` may have left.
    if [ -d "$TMP/runc" ]; then
        for p in $(runc --root "$TMP/runc" list -q 2>/dev/null); do
            timeout 20 runc --root "$TMP/runc" delete -f "$p" >/dev/null 2>&1
        done
    fi
    # dockerd: remove containers, SIGTERM (never -9: its containerd would linger), wait.
    if [ -n "$DD_PID" ] && alive "$DD_PID"; then
        ids=$(timeout 20 "$DOCKER" -H "unix://$TMP/d.sock" ps -aq 2>/dev/null)
        [ -n "$ids" ] && timeout 180 "$DOCKER" -H "unix://$TMP/d.sock" rm -f $ids >/dev/null
        stop_pid "$DD_PID" 60
    fi
    # Anything still running that belongs to this run (containerd, shims) and what runs under it.
    pids=$(tmp_procs)
    if [ -n "$pids" ]; then
        pids=$(descendants $pids | sort -u)
        echo "  cleanup: killing leftover processes: $(echo $pids)" >&2
        for p in $pids; do
            case $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") in
                containerd\ * | */containerd\ *) kill -TERM "$p" 2>/dev/null ;;
            esac
        done
        sleep 0.5
        for p in $pids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    fi
    [ "$NS_CREATED" = 1 ] && ip netns delete "$NS"
    # Unmount whatever is left under $TMP, deepest first, then delete it (same filesystem only).
    for m in $(awk -v t="$TMP/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if [ -s "$PROBLEMS" ]; then
        say ""
        say "== problems seen during the run"
        sed 's/^/  - /' "$PROBLEMS"
    fi
    if awk -v t="$TMP/" 'index($2, t) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
        echo "  cleanup: mounts remain under $TMP; not deleting it" >&2
        rc=1
    else
        rm -rf --one-file-system "$TMP"
    fi
    say "[$(($(date +%s) - T0))s] done (exit $rc)"
    exit "$rc"
}
SIG_RC=
exec 7>&1 8>&2
trap cleanup EXIT
trap 'SIG_RC=130; exit 130' INT
trap 'SIG_RC=143; exit 143' TERM

say "# ros engine benchmark"
say "date $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "system-docker: $SD (built $(stat -c '%y' "$SD" | cut -d. -f1), sha256 $(sha256sum "$SD" | cut -c1-12))"
say "runc: $(runc --version | sed -n 1p); dockerd: $(dockerd --version); docker CLI: $("$DOCKER" --version)"
others=$(ps -eo args= | grep -cE '^(\S*/)?(dockerd|containerd|containerd-shim\S*|system-docker (daemon|shim)|system-docker-shim) ' || true)
[ "$others" = 0 ] || say "note: $others other engine processes (dockerd/containerd/shims/system-docker) already run on this machine; expect noise"
say "N=$N timed runs after $WARMUP warm-ups, $NCONT containers, ps x$PS_N; temp dir $TMP"
python3 "$BENCHPY" "$RES" set date "$(date -u '+%Y-%m-%d')"
python3 "$BENCHPY" "$RES" set kernel "$(uname -r)"
python3 "$BENCHPY" "$RES" set cpus "$(nproc)"
python3 "$BENCHPY" "$RES" set containers "$NCONT"
python3 "$BENCHPY" "$RES" set dockerd_version "$(dockerd --version | sed 's/Docker version //; s/,.*//')"
python3 "$BENCHPY" "$RES" set runc_version "$(runc --version | sed -n 1p | awk '{print $3}')"

# ------------------------------------------------------------------ start the engines
# Each engine runs from private copies of its binaries: PSS then counts only the sharing between
# the processes measured, not with other daemons on the machine that map the same files (and a
# concurrent `cargo build` cannot replace our binary mid-run). The copies are written back and
# dropped from the page cache, so they load like binaries from disk: a freshly written file sits
# in large page-cache folios, which map whole and inflate file-backed RSS (~+1.4 MiB per shim).
evict_cache() {
    sync "$@"
    python3 -c 'import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$@"
}
mkdir -p "$TMP/bin" "$TMP/dbin"
cp "$SD" "$TMP/bin/system-docker"
# The daemon runs the small shim binary when it sits beside its own (as in the OS image).
SHIM_BIN=$(dirname "$SD")/system-docker-shim
if [ -x "$SHIM_BIN" ]; then cp "$SHIM_BIN" "$TMP/bin/system-docker-shim"; fi
SD=$TMP/bin/system-docker
if [ "$SKIP_DOCKERD" != 1 ]; then
    for b in dockerd containerd containerd-shim-runc-v2 runc docker-proxy docker-init; do
        src=$(command -v "$b") || { [ "$b" = docker-proxy ] || [ "$b" = docker-init ]; } ||
            die "missing $b (Debian package docker.io)"
        if [ -n "$src" ]; then cp -L "$src" "$TMP/dbin/$b"; fi
    done
fi
evict_cache "$TMP"/bin/* $([ "$SKIP_DOCKERD" = 1 ] || echo "$TMP"/dbin/*)

step "starting system-docker daemon"
setsid "$SD" daemon -H "unix://$TMP/sd.sock" --data-root "$TMP/sd-data" --exec-root "$TMP/sd-exec" \
    --pidfile "$TMP/sd.pid" >"$TMP/sd.log" 2>&1 </dev/null 7>&- 8>&- &
SD_PID=$!
if ! WATCH=$SD_PID wait_until 20 "system-docker daemon to answer" \
        bash -c "[ -S '$TMP/sd.sock' ] && '$SD' -H 'unix://$TMP/sd.sock' version"; then
    tail -20 "$TMP/sd.log" >&2
    die "system-docker daemon did not start"
fi
[ "$(cat "$TMP/sd.pid" 2>/dev/null)" = "$SD_PID" ] ||
    problem "pidfile says $(cat "$TMP/sd.pid" 2>/dev/null || echo nothing), daemon PID is $SD_PID"
say "  pid $SD_PID; loading busybox.tar"
ours_setup load -i "$FIX/busybox.tar" | sed 's/^/  /'

if [ "$SKIP_DOCKERD" != 1 ]; then
    step "starting dockerd in network namespace $NS"
    ip netns add "$NS"
    NS_CREATED=1
    ip netns exec "$NS" ip link set lo up
    # nsenter --net only (not `ip netns exec`, which remounts /sys and would hide the cgroup mounts).
    PATH=$TMP/dbin:$PATH setsid nsenter --net="/run/netns/$NS" -- "$TMP/dbin/dockerd" --data-root "$TMP/dd" --exec-root "$TMP/de" \
        -H "unix://$TMP/d.sock" --pidfile "$TMP/d.pid" --iptables=false --ip-masq=false \
        --bridge=none >"$TMP/dockerd.log" 2>&1 </dev/null 7>&- 8>&- &
    DD_PID=$!
    if ! WATCH=$DD_PID wait_until 60 "dockerd to answer" bash -c "[ -S '$TMP/d.sock' ] && '$DOCKER' -H 'unix://$TMP/d.sock' version"; then
        tail -30 "$TMP/dockerd.log" >&2
        die "dockerd did not start"
    fi
    say "  pid $DD_PID (containerd pid $(ps -o pid= --ppid "$DD_PID" | tr -d ' ' | tr '\n' ' ')); loading busybox.tar"
    timeout 120 "$DOCKER" -H "unix://$TMP/d.sock" load -i "$FIX/busybox.tar" | sed 's/^/  /'
fi

# ------------------------------------------------------------------ 1. run --rm latency
step "1. run --rm busybox true: $WARMUP warm-up + $N timed rounds, interleaved"
LAT=(ours "$SD -H unix://$TMP/sd.sock run --rm busybox true"
     runc "runc --root $TMP/runc run -b $FIX/bundle rb$$-{i}")
[ "$SKIP_DOCKERD" != 1 ] &&
    LAT+=(dockerd "$DOCKER -H unix://$TMP/d.sock run --rm --network none busybox true")
python3 "$BENCHPY" "$RES" latency "$N" "$WARMUP" 60 "${LAT[@]}"

# --rm must leave nothing behind (dockerd removes asynchronously: poll).
no_containers_ours() { [ -z "$(ours ps -aq)" ]; }
no_containers_dk() { [ -z "$(dk ps -aq)" ]; }
wait_until 20 "system-docker: no containers left after run --rm" no_containers_ours ||
    problem "system-docker: containers left after run --rm: $(ours ps -a 2>&1 | tail -n +2 | sed -n 1,5p)"
[ -z "$(runc --root "$TMP/runc" list -q 2>/dev/null)" ] || problem "runc: containers left after runc run"
if [ "$SKIP_DOCKERD" != 1 ]; then
    wait_until 30 "dockerd: no containers left after run --rm" no_containers_dk ||
        problem "dockerd: containers left after run --rm"
fi

# ------------------------------------------------------------------ 2. idle memory
step "2. idle memory (no containers)"
no_shims_ours() { [ -z "$(ps -o pid= --ppid "$SD_PID")" ]; }
wait_until 20 "system-docker: no shim processes left" no_shims_ours ||
    problem "system-docker: processes left under the daemon with no containers: $(ps -o pid=,args= --ppid "$SD_PID")"
python3 "$BENCHPY" "$RES" mem ours-idle ours "$SD_PID"
[ "$SKIP_DOCKERD" != 1 ] && python3 "$BENCHPY" "$RES" mem dockerd-idle dockerd "$DD_PID" "$TMP/"

# ------------------------------------------------------------------ 3. many containers
start_many() { # NAME CLIENT-FUNCTION EXTRA-RUN-ARGS... : start $NCONT sleep containers, bounded
    local name=$1 fn=$2 i t end
    shift 2
    t=$(date +%s%N)
    end=$((t + 300 * 1000000000))
    for ((i = 1; i <= NCONT; i++)); do
        "$fn" run -d "$@" busybox sleep 100000 >/dev/null ||
            { problem "$name: run -d #$i failed"; return 1; }
        [ "$(date +%s%N)" -lt "$end" ] || { problem "$name: starting $NCONT containers took > 300 s"; return 1; }
    done
    say "  $name: started $NCONT containers in $((($(date +%s%N) - t) / 1000000)) ms"
}
running_count() { "$1" ps -q | grep -c . || true; }

step "3a. system-docker: $NCONT x run -d busybox sleep 100000"
ours_run_setup() { ours_setup "$@"; }
start_many system-docker ours_run_setup
c=$(running_count ours)
[ "$c" = "$NCONT" ] || problem "system-docker: ps shows $c running containers, expected $NCONT"
nshims() { [ "$(ps -o pid= --ppid "$SD_PID" | grep -c .)" -ge "$NCONT" ]; }
wait_until 20 "system-docker: $NCONT shims" nshims ||
    problem "system-docker: $(ps -o pid= --ppid "$SD_PID" | grep -c .) shim processes, expected $NCONT"
python3 "$BENCHPY" "$RES" mem "ours-$NCONT" ours "$SD_PID"
python3 "$BENCHPY" "$RES" latency "$PS_N" 1 30 ours-ps "$SD -H unix://$TMP/sd.sock ps"
t=$(date +%s%N)
# shellcheck disable=SC2046
ours_setup rm -f $(ours ps -aq) >/dev/null
say "  removed $NCONT containers in $((($(date +%s%N) - t) / 1000000)) ms"
wait_until 30 "system-docker: all shims gone" no_shims_ours ||
    problem "system-docker: shims left after rm -f: $(ps -o pid=,args= --ppid "$SD_PID" | sed -n 1,3p)"

if [ "$SKIP_DOCKERD" != 1 ]; then
    step "3b. dockerd: $NCONT x run -d --network none busybox sleep 100000"
    dk_setup() { timeout 60 "$DOCKER" -H "unix://$TMP/d.sock" "$@"; }
    start_many dockerd dk_setup --network none
    c=$(running_count dk)
    [ "$c" = "$NCONT" ] || problem "dockerd: ps shows $c running containers, expected $NCONT"
    python3 "$BENCHPY" "$RES" mem "dockerd-$NCONT" dockerd "$DD_PID" "$TMP/"
    python3 "$BENCHPY" "$RES" latency "$PS_N" 1 30 dockerd-ps "$DOCKER -H unix://$TMP/d.sock ps"
    t=$(date +%s%N)
    # shellcheck disable=SC2046
    timeout 240 "$DOCKER" -H "unix://$TMP/d.sock" rm -f $(dk ps -aq) >/dev/null
    say "  removed $NCONT containers in $((($(date +%s%N) - t) / 1000000)) ms"
fi

# ------------------------------------------------------------------ 4. report
# Warnings and errors our daemon logged during the run (information, not a failure).
n=$(grep -cE ' (ERROR|WARN)' "$TMP/sd.log" || true)
if [ "$n" != 0 ]; then
    step "system-docker daemon log: $n warning/error lines, first 5:"
    grep -m5 -E ' (ERROR|WARN)' "$TMP/sd.log" | cut -c1-300 | sed 's/^/  /'
fi
if [ -s "$TMP/fallbacks" ]; then
    client="system-docker CLI, except: $(sort -u "$TMP/fallbacks" | paste -sd';' -) (stock docker CLI)"
else
    client="system-docker's own CLI for every step on our engine"
fi
python3 "$BENCHPY" "$RES" set client "$client"
step "results"
say "client: $client; dockerd driven by the stock docker CLI"
python3 "$BENCHPY" "$RES" report
say ""
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ ! -s "$PROBLEMS" ] || exit 1

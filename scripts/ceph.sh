#!/usr/bin/env bash
# One-node Ceph cluster (mon + osd + radosgw) for the integration tests: radosgw is a real
# S3 implementation (multipart abort/list, InvalidPart/EntityTooSmall/NoSuchUpload, Content-MD5
# checks, composite ETags) where s3rver is not.
#
# Usage: scripts/ceph.sh install|start|stop|status
#
# Environment:
#   CEPH_DIR          scratch folder (default: <repo>/.ceph, git-ignored)
#   RGW_PORT          radosgw HTTP port on 127.0.0.1 (default 7480)
#   CEPH_OBJECTSTORE  memstore (default) or bluestore
#   MEMSTORE_BYTES    memstore capacity, bytes (default 6 GiB: RAM is taken only as objects are written)
#   RGW_WAIT_SECONDS  how long to wait for radosgw to answer (default 120)
#
# Works as root on Debian bookworm without systemd or docker (Ceph 16.2 "Pacific" from Debian):
# every daemon is started by hand, with its pid file, log and admin socket under $CEPH_DIR, so
# `stop` can end exactly the processes this script started and nothing else.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${CEPH_DIR:-$REPO_DIR/.ceph}
mkdir -p "$D"
D=$(cd "$D" && pwd)
RGW_PORT=${RGW_PORT:-7480}
STORE=${CEPH_OBJECTSTORE:-memstore}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-6442450944}
RGW_WAIT_SECONDS=${RGW_WAIT_SECONDS:-120}
AK=TESTACCESSKEY0000000
SK=testsecretkey0000000000000000000000000000
ENDPOINT="http://127.0.0.1:$RGW_PORT/"

# Debian bookworm package names. `--no-install-recommends` keeps it to ~100 packages (~64 MB);
# ceph-mgr/ceph-mds are not needed by radosgw.
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl bc)
# Tools the `start` subcommand runs.
NEEDED_TOOLS=(radosgw ceph-mon ceph-osd ceph ceph-authtool monmaptool radosgw-admin curl)

# Timing lines: seconds since the script started ($EPOCHREALTIME: bash 5, no `bc` needed).
T0=${EPOCHREALTIME/[.,]/}
ts() {
  local now=${EPOCHREALTIME/[.,]/}
  local ms=$(((now - T0) / 1000))
  printf '[ceph.sh %4d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
FAILURE=""
die() {
  FAILURE="$*"
  echo "ceph.sh: $*" >&2
  exit 1
}

missing_tools() {
  local t missing=()
  for t in "${NEEDED_TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  echo "${missing[*]}"
}

cmd_install() {
  local missing
  missing=$(missing_tools)
  if [ -z "$missing" ]; then
    ts "ceph already installed ($(ceph --version 2>/dev/null | awk '{print $3}'))"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    die "missing: $missing. Install as root: apt-get install -y --no-install-recommends ${PACKAGES[*]}" \
      "(or run 'sudo bash scripts/ceph.sh install'), or set S3_TEST_RADOSGW=0 to skip radosgw tests."
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: $missing, and no apt-get (Debian/Ubuntu only)."
  ts "installing ${PACKAGES[*]} (missing: $missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  missing=$(missing_tools)
  [ -z "$missing" ] || die "still missing after apt-get install: $missing"
  ts "ceph installed ($(ceph --version | awk '{print $3}'))"
}

rgw_answers() { curl -fsS -o /dev/null --max-time 2 "$ENDPOINT" 2>/dev/null; }

# Pid from one of our pid files, only if that process is still a Ceph daemon (guards against
# pid reuse after a reboot or a crash).
pid_of() {
  local f=$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f" 2>/dev/null || true)
  [[ "$p" =~ ^[0-9]+$ ]] || return 0
  if alive "$p" && grep -qE '^(ceph-mon|ceph-osd|radosgw)' "/proc/$p/comm" 2>/dev/null; then
    echo "$p"
  fi
}

rgw_is_ours() {
  [ -f "$D/ready" ] && [ -n "$(pid_of "$D/run/client.rgw.a.pid")" ]
}

# Daemons are reparented to pid 1; a zombie (pid 1 that does not reap, e.g. in some containers)
# counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

wait_gone() { # pid, tenths of a second
  local i
  for ((i = 0; i < $2; i++)); do
    alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# Ends only the daemons named in $CEPH_DIR/run/*.pid, and waits until they are gone.
# SIGKILL, not SIGTERM: the data is deleted right after, so a clean shutdown buys nothing and costs
# ~10 s (measured: radosgw waits ~5 s for its lifecycle threads, the OSD and the mon ~2 s each, and
# a memstore OSD would first dump everything it holds in RAM to disk).
stop_daemons() {
  local f p stopped=() pids=()
  [ -d "$D/run" ] || return 0
  for f in "$D"/run/*.pid; do
    p=$(pid_of "$f")
    [ -n "$p" ] || continue
    kill -KILL "$p" 2>/dev/null || true
    pids+=("$p")
    stopped+=("$(basename "$f" .pid)=$p")
  done
  for p in "${pids[@]}"; do wait_gone "$p" 100 || echo "ceph.sh: pid $p still alive 10 s after SIGKILL" >&2; done
  [ ${#stopped[@]} = 0 ] || ts "killed ${stopped[*]}"
}

# Only what this script creates: a vitest log file may live next to it in $CEPH_DIR.
remove_data() {
  rm -rf "$D"/{mon,osd,rgw,run,log} "$D"/{ceph.conf,keyring,monmap,ready}
}

dump_logs() {
  local f
  echo "---- ceph.sh: tail of logs in $D/log ----" >&2
  # radosgw's log last: it is the one that matters most when radosgw does not answer.
  for f in "$D"/log/daemon-stderr.log "$D"/log/osd-mkfs.out "$D"/log/mon.a.log "$D"/log/osd.0.log "$D"/log/client.rgw.a.log; do
    [ -s "$f" ] || continue
    echo "==> $f <==" >&2
    tail -n 20 "$f" | cut -c1-300 >&2
  done
}

# Take a lock so a second `start` (e.g. two test runs at once) waits instead of racing.
lock() {
  exec 9>"$D/.lock"
  flock -w 300 9 || die "could not lock $D/.lock within 300 s"
}

write_conf() {
  local fsid=$1
  cat >"$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/keyring
# Everything under \$CEPH_DIR: nothing in /etc/ceph, /var/lib/ceph, /var/run/ceph.
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
# One OSD: one copy of each object, and let CRUSH place all replicas on the same host.
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
# Placement groups. The mon refuses to create a pool (ERANGE) once the total of pg_num x size over
# all pools would exceed 'mon max pg per osd' (default 250) x the number of OSDs: 250 here. radosgw
# creates its pools itself as it needs them: 4 at start-up (.rgw.root, default.rgw.{log,control,
# meta}), then default.rgw.buckets.{index,data,non-ec} with the first bucket and multipart upload.
# At the default 32 PGs per pool those 7 pools already take 224 of the 250, so one more (a mgr's
# .mgr pool, radosgw's otp/notification pools, a second zone...) fails and radosgw returns errors.
# 8 PGs per pool (56 in all) is plenty for one OSD, peers faster and saves ~10 MiB of OSD memory;
# 'mon max pg per osd = 1000' is headroom. No mgr runs, so the PG autoscaler (a mgr module) is off.
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
[mon]
mon data = $D/mon/\$id
# Never go read-only because the disk holding \$CEPH_DIR is fairly full.
mon data avail warn = 1
mon data avail crit = 0
mon cluster log file = default=$D/log/ceph.\$channel.log cluster=$D/log/ceph.log
auth allow insecure global id reclaim = false
# The mon batches map changes and commits them at most once per 'paxos propose interval' (1 s).
# radosgw's start-up is a chain of ~10 pool/application commands, each waiting for one commit, so
# the default makes it take ~10 s (and each first bucket ~2 s more). One mon, no peers: commit now.
paxos propose interval = 0.01
paxos min wait = 0.001
[osd]
osd data = $D/osd/\$id
osd objectstore = $STORE
# memstore keeps objects in the OSD's RAM; this is the capacity it reports (the tests upload a
# few hundred MiB in total; aborted parts are only freed later by radosgw's garbage collector).
memstore device bytes = $MEMSTORE_BYTES
# bluestore (CEPH_OBJECTSTORE=bluestore) uses a sparse 20 GiB file: only written blocks use disk.
bluestore block path = $D/osd/\$id/block.file
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
# S3 keys can be up to 1024 bytes; allow long RADOS object names.
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
rgw dns name = localhost
rgw thread pool size = 64
# Deleted objects' data and aborted multipart parts are only freed by radosgw's garbage collector,
# by default 2 h later; with memstore that data would sit in the OSD's RAM for the whole test run.
# (The delay exists so that in-flight GETs of a just-replaced object can finish; 30 s is plenty here.)
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF
}

new_uuid() { if command -v uuidgen >/dev/null 2>&1; then uuidgen; else cat /proc/sys/kernel/random/uuid; fi; }

cmd_start() {
  lock
  if rgw_is_ours && rgw_answers; then
    ts "radosgw (pid $(cat "$D/run/client.rgw.a.pid")) already answering on $ENDPOINT"
    return 0
  fi
  cmd_install
  # Leftovers of an earlier, unfinished start: end them and start afresh.
  stop_daemons
  remove_data
  if rgw_answers; then
    die "something else already answers on $ENDPOINT (not started by this script); stop it or set RGW_PORT"
  fi
  case "$STORE" in memstore | bluestore) ;; *) die "CEPH_OBJECTSTORE must be memstore or bluestore" ;; esac
  if [ ${#D} -gt 80 ]; then
    echo "ceph.sh: warning: CEPH_DIR path is long; unix socket paths are limited to 107 bytes" >&2
  fi

  # On any failure from here on: show the logs and end what was started.
  trap 'rc=$?; if [ $rc != 0 ]; then dump_logs; stop_daemons; echo "ceph.sh: start FAILED (exit $rc): ${FAILURE:-see above}" >&2; fi' EXIT

  mkdir -p "$D"/{mon/a,osd,run,log,rgw}
  local fsid osd_uuid osd_key osd_id i
  fsid=$(new_uuid)
  write_conf "$fsid"
  export CEPH_CONF=$D/ceph.conf
  ts "starting one-node ceph ($STORE) in $D"

  # mon.a, with the mon. and client.admin keys in one keyring (used by every CLI call below).
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$D/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
  # `9>&-`: daemons must not inherit the lock's file descriptor (they would hold the lock forever).
  ceph-mon -i a 9>&-
  ts "mon started"
  timeout 60 ceph -s --connect-timeout 50 >/dev/null
  ts "mon in quorum"

  # osd.0
  osd_uuid=$(new_uuid)
  osd_key=$(ceph-authtool --gen-print-key)
  osd_id=$(echo "{\"cephx_secret\": \"$osd_key\"}" | timeout 60 ceph osd new "$osd_uuid" -i -)
  mkdir -p "$D/osd/$osd_id"
  ceph-authtool --create-keyring "$D/osd/$osd_id/keyring" --name "osd.$osd_id" --add-key "$osd_key" >/dev/null
  timeout 120 ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" --keyring "$D/osd/$osd_id/keyring" \
    >"$D/log/osd-mkfs.out" 2>&1 || { cat "$D/log/osd-mkfs.out" >&2; die "ceph-osd --mkfs failed"; }
  ts "osd mkfs done"
  ceph-osd -i "$osd_id" --keyring "$D/osd/$osd_id/keyring" 9>&- 2>>"$D/log/daemon-stderr.log"
  ts "osd started"
  for i in $(seq 1 60); do
    timeout 10 ceph osd stat 2>/dev/null | grep -q ' 1 up' && break
    [ "$i" = 60 ] && die "osd not up after 60 s"
    sleep 0.5
  done
  ts "osd up"

  # radosgw
  timeout 60 ceph auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' >"$D/rgw/keyring"
  radosgw -n client.rgw.a --keyring "$D/rgw/keyring" 9>&- 2>>"$D/log/daemon-stderr.log"
  ts "radosgw started"
  local deadline=$((SECONDS + RGW_WAIT_SECONDS))
  until rgw_answers; do
    [ $SECONDS -lt $deadline ] || die "radosgw did not answer on $ENDPOINT within $RGW_WAIT_SECONDS s"
    local p
    p=$(cat "$D/run/client.rgw.a.pid" 2>/dev/null || true)
    if [ -n "$p" ] && ! alive "$p"; then die "radosgw exited"; fi
    sleep 0.25
  done
  ts "radosgw answering on $ENDPOINT"
  timeout 60 radosgw-admin -n client.admin user create --uid=test --display-name=test \
    --access-key="$AK" --secret="$SK" >/dev/null
  touch "$D/ready"
  ts "S3 user created (access key $AK); ready"
  trap - EXIT
}

cmd_stop() {
  lock
  stop_daemons
  remove_data
  rm -f "$D/.lock"
  rmdir "$D" 2>/dev/null || true
  ts "ceph stopped, data removed from $D"
}

cmd_status() {
  if rgw_answers; then
    if rgw_is_ours; then echo "radosgw answering on $ENDPOINT (pid $(cat "$D/run/client.rgw.a.pid"))"; else echo "something answers on $ENDPOINT (not started from $D)"; fi
    return 0
  fi
  echo "radosgw not answering on $ENDPOINT"
  return 1
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# floe's local S3 server for tests and benchmarks: a single-node Ceph RADOS
# Gateway (mon + memstore OSD + radosgw) on 127.0.0.1. Adapted from the
# project's verified recipe (shared/recipes/ceph-rgw-local.sh).
#
#   scripts/s3-local.sh install  install the Debian packages (apt) and nothing
#                                else; needs root or password-less sudo
#   scripts/s3-local.sh start    install if needed, create the cluster if absent,
#                                start mon + osd + rgw, wait until S3 answers,
#                                create the bucket, print export lines on stdout:
#                                  eval "$(scripts/s3-local.sh start)"
#                                idempotent: an already running server is reused
#   scripts/s3-local.sh stop     stop rgw -> osd -> mon and wait for them to exit
#   scripts/s3-local.sh status   exit 0 when all daemons run and S3 answers, else 3
#   scripts/s3-local.sh env      print the export lines only
#   scripts/s3-local.sh purge    stop and delete the data directory
#
# Exported by start/env: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, BUCKET, and for floe's tests FLOE_S3_ENDPOINT, FLOE_S3_BUCKET.
#
# Environment (defaults): RGW_DIR=${TMPDIR:-/tmp}/floe-rgw RGW_PORT=7480
#   RGW_MON_PORT=6789 BUCKET=floe-test RGW_ACCESS_KEY=floe
#   RGW_SECRET_KEY=floesecret RGW_STORE_BYTES=2147483648 (memstore capacity)
#   RGW_START_TIMEOUT=120 (seconds)
#
# The OSD uses memstore: objects live in RAM (up to RGW_STORE_BYTES) and are
# written to RGW_DIR when the OSD shuts down cleanly (`stop`), so data
# survives stop/start. If the daemons died any other way (kill -9, reboot),
# `start` wipes the cluster and builds a fresh, empty one. Progress goes to
# stderr; stdout carries only the export lines. Logs are in $RGW_DIR/log.
# On failure `start` prints the relevant log tail, stops whatever it started
# and exits 1.
set -euo pipefail

RGW_DIR=${RGW_DIR:-${TMPDIR:-/tmp}/floe-rgw}
RGW_DIR=${RGW_DIR%/}
RGW_PORT=${RGW_PORT:-7480}
RGW_MON_PORT=${RGW_MON_PORT:-6789}
RGW_ACCESS_KEY=${RGW_ACCESS_KEY:-floe}
RGW_SECRET_KEY=${RGW_SECRET_KEY:-floesecret}
RGW_STORE_BYTES=${RGW_STORE_BYTES:-2147483648}
RGW_START_TIMEOUT=${RGW_START_TIMEOUT:-120}
BUCKET=${BUCKET:-floe-test}

CONF=$RGW_DIR/ceph.conf
LOG=$RGW_DIR/log
RUN=$RGW_DIR/run
ENDPOINT=http://127.0.0.1:$RGW_PORT
LOCK=$RGW_DIR.lock   # outside RGW_DIR, which create_cluster wipes
PY=/usr/bin/python3  # the distribution's python, which has the rados module
# name:binary of each daemon, in start order
DAEMONS=(mon.a:ceph-mon osd.0:ceph-osd client.rgw.a:radosgw)

say() { echo "s3-local: $*" >&2; }
now_ms() { date +%s%3N; }

STARTING=0
die() {  # die MESSAGE [LOGFILE]
  say "error: $1"
  if [[ -n ${2:-} && -f $2 ]]; then
    say "last 30 lines of $2:"
    tail -n 30 "$2" >&2
  fi
  if ((STARTING)); then
    # leave nothing half-started behind; the next start builds a new cluster
    STARTING=0
    stop_all >/dev/null 2>&1 || true
    rm -f "$RGW_DIR/cluster-created"
  fi
  exit 1
}

# ---------------------------------------------------------------- install
PKGS_HINT="radosgw ceph-mon ceph-osd ceph-common python3-rados curl util-linux"

missing_tools() {  # print what is missing, space-separated (nothing when complete)
  local missing=() b
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool curl flock; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  "$PY" -c 'import rados' >/dev/null 2>&1 || missing+=(python3-rados)
  echo "${missing[*]}"
}

cannot_install() {  # cannot_install WHY
  say "error: cannot install the Ceph packages: $1"
  say "install them yourself (Debian 12 / Ubuntu), as root:"
  say "  apt-get update && apt-get install -y --no-install-recommends $PKGS_HINT"
  say "then run '$0 start' again; or run the tests against any other S3-compatible"
  say "server by exporting FLOE_S3_ENDPOINT (and FLOE_S3_BUCKET, AWS_ACCESS_KEY_ID,"
  say "AWS_SECRET_ACCESS_KEY), or skip the S3 suites deliberately with FLOE_SKIP_S3=1"
  exit 1
}

install_packages() {
  local missing
  missing=$(missing_tools)
  [[ -z $missing ]] && return 0
  say "installing packages (missing: $missing)"
  command -v apt-get >/dev/null 2>&1 || cannot_install "apt-get not found (not a Debian/Ubuntu system)"
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || cannot_install "not root and sudo is not installed"
    sudo -n true 2>/dev/null || cannot_install "not root and sudo needs a password"
    sudo=(sudo -n)
  fi
  local pkgs=(radosgw ceph-mon ceph-osd ceph-common python3-rados)
  # name curl / util-linux only when missing, or apt would upgrade them too
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v flock >/dev/null 2>&1 || pkgs+=(util-linux)
  "${sudo[@]}" apt-get update -q >&2 || say "apt-get update failed; trying the install anyway"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${pkgs[@]}" >&2 || cannot_install "apt-get install ${pkgs[*]} failed (see above)"
  missing=$(missing_tools)
  [[ -z $missing ]] || cannot_install "still missing after apt-get install: $missing"
}

# ---------------------------------------------------------------- processes
alive() {  # alive PID; a zombie (exited, not yet reaped) counts as dead
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

pid_of() {  # pid_of NAME BINARY: print the pid if that daemon is alive
  local f=$RUN/$1.pid pid comm
  [[ -f $f ]] || return 1
  pid=$(<"$f") || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  # guard against a recycled pid; /proc/PID/comm is cut to 15 characters
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == "${2:0:15}" ]] || return 1
  echo "$pid"
}

all_running() {
  local d
  for d in "${DAEMONS[@]}"; do pid_of "${d%%:*}" "${d#*:}" >/dev/null || return 1; done
}

http_code() {  # anonymous GET /: print the status code (000 when no answer)
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null || true
}

port_busy() {  # port_busy PORT: something accepts connections there
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_one() {  # stop_one NAME BINARY; returns 1 if it had to be killed
  local pid i
  pid=$(pid_of "$1" "$2") || { rm -f "$RUN/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 2400; i++)); do   # 120 s: the OSD writes out its memstore
    alive "$pid" || { rm -f "$RUN/$1.pid"; return 0; }
    sleep 0.05
  done
  say "$1 (pid $pid) did not exit in 120 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/$1.pid"
  return 1
}

stop_all() {
  stop_one client.rgw.a radosgw || true
  if pid_of osd.0 ceph-osd >/dev/null; then
    # only a clean exit leaves a saved memstore that matches the monitor
    stop_one osd.0 ceph-osd && touch "$RGW_DIR/osd-clean"
  fi
  stop_one mon.a ceph-mon || true
}

# Each start_* returns 1 with FAILED/FAILED_LOG set instead of exiting, so a
# reused cluster that does not come up can be replaced by a new one.
FAILED=
FAILED_LOG=
fail() { FAILED=$1; FAILED_LOG=${2:-}; return 1; }

start_mon() {
  pid_of mon.a ceph-mon >/dev/null && return 0
  # 9>&-: the daemons must not inherit the lock
  ceph-mon -c "$CONF" -i a >>"$LOG/setup.log" 2>&1 9>&- ||
    fail "ceph-mon failed to start" "$LOG/mon.a.log" || return 1
  pid_of mon.a ceph-mon >/dev/null || fail "ceph-mon exited" "$LOG/mon.a.log"
}

start_osd() {
  pid_of osd.0 ceph-osd >/dev/null && return 0
  rm -f "$RGW_DIR/osd-clean"
  ceph-osd -c "$CONF" -i 0 >>"$LOG/setup.log" 2>&1 9>&- ||
    fail "ceph-osd failed to start" "$LOG/osd.0.log" || return 1
  pid_of osd.0 ceph-osd >/dev/null || fail "ceph-osd exited" "$LOG/osd.0.log"
}

start_rgw() {
  pid_of client.rgw.a radosgw >/dev/null && return 0
  radosgw -c "$CONF" -n client.rgw.a >>"$LOG/setup.log" 2>&1 9>&- ||
    fail "radosgw failed to start" "$LOG/client.rgw.a.log"
}

wait_ready() {  # wait_ready SECONDS
  local t0 now d code
  t0=$(now_ms)
  while :; do
    code=$(http_code)
    if [[ $code != 000 ]]; then
      pid_of client.rgw.a radosgw >/dev/null && return 0
      [[ ! -f $RUN/client.rgw.a.pid ]] ||
        fail "port $RGW_PORT answers but radosgw is not running" "$LOG/client.rgw.a.log" || return 1
    fi
    for d in "${DAEMONS[@]}"; do
      pid_of "${d%%:*}" "${d#*:}" >/dev/null && continue
      # radosgw writes its pid file a moment after it forks
      [[ ${d%%:*} == client.rgw.a && ! -f $RUN/client.rgw.a.pid ]] && continue
      fail "${d%%:*} is not running" "$LOG/${d%%:*}.log" || return 1
    done
    now=$(now_ms)
    ((now - t0 <= $1 * 1000)) ||
      fail "S3 endpoint $ENDPOINT not ready after $1 s" "$LOG/client.rgw.a.log" || return 1
    # poll fast at first (a fresh start takes about 2 s), then back off
    if ((now - t0 < 5000)); then sleep 0.05; else sleep 0.5; fi
  done
}

bring_up() {  # bring_up SECONDS: mon, osd, rgw, then wait for S3
  start_mon && start_osd && start_rgw && wait_ready "$1"
}

# ---------------------------------------------------------------- cluster
write_conf() {  # write_conf FSID
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon_initial_members = a
mon_host = [v1:127.0.0.1:$RGW_MON_PORT]
ms_bind_msgr2 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_cluster_mode = crc
ms_service_mode = crc
ms_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_mon_client_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_crush_initial_weight = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
paxos_propose_interval = 0.1
keyring = $RGW_DIR/keyring
run_dir = $RUN
admin_socket = $RUN/\$name.asok
pid_file = $RUN/\$name.pid
log_file = $LOG/\$name.log
crash_dir = $RGW_DIR/crash
mon_data = $RGW_DIR/\$name
osd_data = $RGW_DIR/\$name
rgw_data = $RGW_DIR/\$name

[mon]
mon_data_avail_crit = 1
mon_data_avail_warn = 2

[osd]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
osd_objectstore = memstore
memstore_device_bytes = $RGW_STORE_BYTES
# memstore saves its data when the store is unmounted, which the default
# fast shutdown skips
osd_fast_shutdown = false
# A fresh client can send its first mon command before the mon's map has
# reached it, with fsid 0, and the mon refuses it ("wrong fsid"). The OSD's
# boot-time "osd crush ..." commands hit this and the OSD exits, so they are
# off and create_cluster places osd.0 in the CRUSH map itself.
osd_crush_update_on_start = false
osd_class_update_on_start = false

[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_init_timeout = $RGW_START_TIMEOUT
EOF
}

create_cluster() {  # leaves the new mon running
  say "creating a new cluster in $RGW_DIR"
  rm -rf "$RGW_DIR"
  mkdir -p "$RGW_DIR" "$LOG" "$RUN" "$RGW_DIR/crash" "$RGW_DIR/osd.0"
  local fsid osd_uuid
  fsid=$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$RGW_DIR/keyring" --gen-key -n mon. \
    --cap mon 'allow *' >>"$LOG/setup.log" 2>&1 || die "ceph-authtool failed" "$LOG/setup.log"
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$RGW_MON_PORT]" \
    "$RGW_DIR/monmap" >>"$LOG/setup.log" 2>&1 || die "monmaptool failed" "$LOG/setup.log"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$RGW_DIR/monmap" \
    --keyring "$RGW_DIR/keyring" >>"$LOG/setup.log" 2>&1 || die "ceph-mon --mkfs failed" "$LOG/setup.log"
  start_mon || die "$FAILED" "$FAILED_LOG"
  # Register osd.0 and put it under the default CRUSH root, in one librados
  # session (the ceph CLI would take two and starts slower). A command that
  # races ahead of the monmap is refused with "wrong fsid": send it again.
  "$PY" - "$CONF" "$osd_uuid" >>"$LOG/setup.log" 2>&1 <<'PY' || die "registering osd.0 failed" "$LOG/setup.log"
import json, sys, time, rados
cluster = rados.Rados(conffile=sys.argv[1])
cluster.connect(timeout=30)
for cmd in ({"prefix": "osd create", "uuid": sys.argv[2]},
            {"prefix": "osd crush add", "id": 0, "weight": 1.0, "args": ["root=default"]}):
    for attempt in range(100):
        ret, out, err = cluster.mon_command(json.dumps(cmd), b"", timeout=30)
        if not (ret != 0 and "wrong fsid" in err):
            break
        time.sleep(0.05)
    print(cmd["prefix"], "->", ret, out.decode().strip(), err, "attempts", attempt + 1)
    if ret != 0 or (cmd["prefix"] == "osd create" and out.strip() != b"0"):
        sys.exit(1)
cluster.shutdown()
PY
  ceph-osd -c "$CONF" --mkfs -i 0 --osd-uuid "$osd_uuid" >>"$LOG/setup.log" 2>&1 ||
    die "ceph-osd --mkfs failed" "$LOG/setup.log"
  echo "$fsid $RGW_MON_PORT" >"$RGW_DIR/cluster-created"
}

s3_put_bucket() {  # print the HTTP status; the body goes to $LOG/bucket.out
  curl -s -o "$LOG/bucket.out" -w '%{http_code}' -m 30 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "$ENDPOINT/$BUCKET" || true
}

ensure_user_and_bucket() {
  local code
  code=$(s3_put_bucket)
  if [[ $code == 403 ]] && grep -q InvalidAccessKeyId "$LOG/bucket.out"; then
    # auth "none" covers the cluster only; RGW still checks S3 signatures
    # against its own users
    radosgw-admin -c "$CONF" -n client.rgw.a user create \
      --uid="$RGW_ACCESS_KEY" --display-name="$RGW_ACCESS_KEY" \
      --access-key="$RGW_ACCESS_KEY" --secret="$RGW_SECRET_KEY" >>"$LOG/setup.log" 2>&1 ||
      die "radosgw-admin user create failed" "$LOG/setup.log"
    code=$(s3_put_bucket)
  fi
  case $code in
    200) ;;   # created, or already ours
    409) grep -q BucketAlreadyOwnedByYou "$LOG/bucket.out" ||
           die "bucket $BUCKET exists under another owner: $(cat "$LOG/bucket.out")" ;;
    *) die "creating bucket $BUCKET got HTTP $code: $(cat "$LOG/bucket.out" 2>/dev/null)" "$LOG/client.rgw.a.log" ;;
  esac
}

print_env() {
  cat <<EOF
export S3_ENDPOINT=$ENDPOINT
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_REGION=us-east-1
export BUCKET=$BUCKET
export FLOE_S3_ENDPOINT=$ENDPOINT
export FLOE_S3_BUCKET=$BUCKET
EOF
}

# ---------------------------------------------------------------- commands
cmd_start() {
  install_packages
  exec 9>"$LOCK"
  flock 9
  local t0 created=
  t0=$(now_ms)
  if all_running && [[ $(http_code) != 000 ]]; then
    ensure_user_and_bucket
    say "already running at $ENDPOINT"
    print_env
    return 0
  fi
  stop_all   # whatever is left of an earlier run
  port_busy "$RGW_PORT" && die "port $RGW_PORT is already in use (set RGW_PORT)"
  port_busy "$RGW_MON_PORT" && die "port $RGW_MON_PORT is already in use (set RGW_MON_PORT)"
  STARTING=1
  [[ -f $RGW_DIR/cluster-created ]] && created=$(<"$RGW_DIR/cluster-created")
  if [[ -f $RGW_DIR/osd-clean && -f $CONF && $created == *" $RGW_MON_PORT" ]]; then
    # reuse the cluster: the OSD saved its memstore when it stopped
    write_conf "${created% *}"   # the RGW port or store size may have changed
    mkdir -p "$LOG" "$RUN"
    if ! bring_up $((RGW_START_TIMEOUT < 30 ? RGW_START_TIMEOUT : 30)); then
      say "the existing cluster did not come up ($FAILED); building a new one, its data is lost"
      stop_all
      create_cluster
      bring_up "$RGW_START_TIMEOUT" || die "$FAILED" "$FAILED_LOG"
    fi
  else
    # no cluster yet, the OSD was not stopped cleanly (its saved memstore no
    # longer matches the monitor), or the mon port changed: start afresh
    create_cluster
    bring_up "$RGW_START_TIMEOUT" || die "$FAILED" "$FAILED_LOG"
  fi
  ensure_user_and_bucket
  STARTING=0
  say "ready at $ENDPOINT in $(($(now_ms) - t0)) ms (logs in $LOG)"
  print_env
}

cmd_stop() {
  [[ -d $RGW_DIR ]] || { say "nothing to stop ($RGW_DIR absent)"; return 0; }
  exec 9>"$LOCK"
  flock 9
  stop_all
  say "stopped"
}

cmd_status() {
  local d pid rc=0 code
  for d in "${DAEMONS[@]}"; do
    if pid=$(pid_of "${d%%:*}" "${d#*:}"); then
      echo "${d%%:*}: running (pid $pid)"
    else
      echo "${d%%:*}: stopped"
      rc=3
    fi
  done
  code=$(http_code)
  if [[ $code == 000 ]]; then
    echo "s3: no answer at $ENDPOINT"
    rc=3
  else
    echo "s3: $ENDPOINT answers (HTTP $code)"
  fi
  return $rc
}

cmd_purge() {
  if [[ -d $RGW_DIR ]]; then
    cmd_stop
    rm -rf "$RGW_DIR"
  fi
  rm -f "$LOCK"
  say "removed $RGW_DIR"
}

cmd_install() {
  install_packages
  say "packages present: ceph-mon, ceph-osd, radosgw, radosgw-admin, curl, flock, python3-rados"
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  purge) cmd_purge ;;
  *) echo "usage: $0 install|start|stop|status|env|purge" >&2; exit 2 ;;
esac

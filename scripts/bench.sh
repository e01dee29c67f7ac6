#!/usr/bin/env bash
# `make bench`: release build, Argon2 timing, HTTP load tests with wrk on PostgreSQL and on
# SQLite, report in docs/benchmarks.md.
#
# Per backend: start the release server on a free loopback port (log level warn), wait for
# /health/ready, warm up, record idle RSS, seed accounts and sessions, then run with
# `wrk -t2 -c32`:
#   1. GET /api/v1/me with a valid bearer token
#   2. POST /api/v1/auth/refresh with chained rotation (every token used once)
#   3. POST /api/v1/auth/login
#   4. GET /api/v1/me while a login flood (a second wrk) runs
# and record requests/s, p50/p99, non-2xx and socket errors, server CPU, RSS.
#
# Knobs (environment):
#   BENCH_DURATION=15        seconds per measured run
#   BENCH_BACKENDS="postgres sqlite"
#   BENCH_OUT=docs/benchmarks.md
#   BENCH_KEEP=0             1 keeps the work directory (wrk outputs, server logs)
#   BENCH_QUIET_MAX_PCT=20   a run waits until the machine is below this CPU use ...
#   BENCH_QUIET_TIMEOUT=120  ... for at most this many seconds, then runs anyway (noted)
#   BENCH_RATE_LIMITS=raise  raise: the login, signup and refresh limits set so high that they
#                            never trigger (the limiter still counts every hit, as in
#                            production); off: rate limits and lockout disabled; config: as
#                            configured (the load runs then mostly measure 429s)
#   BENCH_BIN=path           benchmark this auth-http binary instead of building one
#   BENCH_CONFIG_DIR=config  the AUTH_CONFIG_DIR of the server
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   the PostgreSQL server (trust auth)
#   CARGO=cargo
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LUA_DIR=$ROOT/scripts/bench

DURATION=${BENCH_DURATION:-15}
BACKENDS=${BENCH_BACKENDS:-postgres sqlite}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
KEEP=${BENCH_KEEP:-0}
QUIET_MAX_PCT=${BENCH_QUIET_MAX_PCT:-20}
QUIET_TIMEOUT=${BENCH_QUIET_TIMEOUT:-120}
CARGO=${CARGO:-cargo}
CONFIG_DIR=$(realpath "${BENCH_CONFIG_DIR:-$ROOT/config}")
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

RATE_LIMITS=${BENCH_RATE_LIMITS:-raise}
THREADS=2
CONNS=32
WRK_TIMEOUT=5s
FLOOD_CONNS=16
PASSWORD=bench-passphrase-7f3a9c
# Refresh pool: more tokens than connections per thread, so no request waits for one.
REFRESH_SESSIONS=$((THREADS * (CONNS / THREADS + 8)))
USERS=8

# Targets (2 cores, wrk -t2 -c32, PostgreSQL).
T_ME_RPS=10000
T_ME_P99_MS=10
T_REFRESH_RPS=3000
T_LOGIN_RATIO=0.90
T_FLOOD_P99_MS=10
T_IDLE_RSS_MB=20
T_LOAD_RSS_MB=64

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[bench] error: %s\n' "$*" >&2
    exit 1
}

# ---- cleanup ------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auth-bench.XXXXXX")
SERVER_PID=""
PG_DB=""
BG_PIDS=()

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server $SERVER_PID did not stop within 10 s of SIGTERM: SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

drop_database() {
    [[ -n $PG_DB ]] || return 0
    psql -v ON_ERROR_STOP=1 -qAt -d postgres -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null ||
        log "warning: could not drop database $PG_DB; drop it by hand"
    PG_DB=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_server
    drop_database
    if [[ $rc -ne 0 || $KEEP == 1 ]]; then
        log "work directory kept: $WORK (wrk outputs, server logs)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- prerequisites -------------------------------------------------------------------------

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

install_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    [[ $(id -u) == 0 ]] || die "wrk is missing and installing it needs root: apt-get install -y wrk"
    need apt-get "install wrk by hand"
    log "installing wrk (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >"$WORK/apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$WORK/apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >>"$WORK/apt.log" 2>&1 ||
            die "apt-get install wrk failed, see $WORK/apt.log"
    fi
    command -v wrk >/dev/null 2>&1 || die "wrk still not found after installing it"
}

need "$CARGO" "the Rust toolchain"
need curl "apt-get install -y curl"
need jq "apt-get install -y jq"
need awk "apt-get install -y gawk"
need timeout "coreutils"
for backend in $BACKENDS; do
    case $backend in
    postgres)
        need psql "apt-get install -y postgresql-client"
        need pg_isready "apt-get install -y postgresql-client"
        ;;
    sqlite) ;;
    *) die "BENCH_BACKENDS: unknown backend '$backend' (postgres, sqlite)" ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 5 ]] || die "BENCH_DURATION must be a whole number of seconds, at least 5"
install_wrk

CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

# ---- measuring helpers ---------------------------------------------------------------------

# busy and total jiffies of the whole machine
machine_ticks() { awk '/^cpu /{ t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t; exit }' /proc/stat; }
# user+system jiffies of one process (0 when gone)
proc_ticks() { { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{ print ($12+$13)+0 }'; }
# user+system jiffies of every PostgreSQL process
pg_ticks() {
    local sum=0 pid
    for pid in $(pgrep -x postgres 2>/dev/null || true); do
        sum=$((sum + $(proc_ticks "$pid")))
    done
    echo "$sum"
}
# a /proc/PID/status field in kB
status_kb() { awk -v k="$2:" '$1==k { print $2; exit }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb/1024 }'; }
calc() { local expr=${1//--/+}; awk "BEGIN { printf \"%.${2:-2}f\", $expr }"; }

# Seconds of user+system CPU of the shell's children, from the output of `times`.
children_secs() {
    awk 'NR==2 { t=0; for (i=1;i<=2;i++) { split($i, a, /[ms]/); t += a[1]*60 + a[2] } printf "%.3f", t }' "$1"
}

# Wait until the machine is idle enough to measure; sets QUIET_BUSY to the busy percentage
# found (of all CPUs), and notes a run that had to go ahead on a busy machine.
QUIET_NOTES=()
QUIET_BUSY=0
wait_for_quiet() {
    local what=$1 waited=0 busy
    while true; do
        read -r b0 t0 < <(machine_ticks)
        sleep 2
        read -r b1 t1 < <(machine_ticks)
        busy=$(calc "100*($b1-$b0)/($t1-$t0)" 0)
        if ((busy <= QUIET_MAX_PCT)); then
            break
        fi
        if ((waited >= QUIET_TIMEOUT)); then
            local top
            top=$(top -b -n2 -d1 -w 200 2>/dev/null | awk '/^top -/{n++} n==2' | sed -n '8,11p' |
                awk '{ printf "%s %s%%; ", $12, $9 }')
            QUIET_NOTES+=("$what: machine still ${busy}% busy after waiting ${waited} s (top: ${top})")
            log "warning: measuring anyway, machine is ${busy}% busy: ${top}"
            break
        fi
        ((waited == 0)) && log "machine is ${busy}% busy (other builds?): waiting up to ${QUIET_TIMEOUT} s for it to settle"
        sleep 3
        waited=$((waited + 5))
    done
    QUIET_BUSY=$busy
}

# A field of the BENCH line that common.lua prints.
field() { grep -m1 '^BENCH ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k { print $2 }'; }

# ---- build ---------------------------------------------------------------------------------

BIN_NOTE=""
if [[ -n ${BENCH_BIN:-} ]]; then
    BIN=$(realpath "$BENCH_BIN")
    [[ -x $BIN ]] || die "BENCH_BIN=$BENCH_BIN is not an executable"
    BIN_NOTE="binary given by BENCH_BIN (built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)), not built by this run"
    log "using $BIN (BENCH_BIN), no build"
else
    log "building the release binary (cargo may wait for the build directory lock)"
    "$CARGO" build --release --bin auth-http || die "cargo build --release --bin auth-http failed"
    TARGET_DIR=$("$CARGO" metadata --format-version 1 --no-deps | jq -r .target_directory)
    BIN=$TARGET_DIR/release/auth-http
    [[ -x $BIN ]] || die "built binary not found at $BIN"
fi

# The server reads its config files at start-up; others may edit them while this runs, and
# the binary must see the files that match its code: copy them now, next to the build.
[[ -d $CONFIG_DIR ]] || die "config directory $CONFIG_DIR not found"
cp -r "$CONFIG_DIR" "$WORK/config"
CONFIG_DIR=$WORK/config

# Rate limits and lockout (when this build has them): one client IP hammering login would
# otherwise only measure 429s. The seeded logins always succeed, so lockout never triggers.
RATE_ENV=()
RATE_NOTE="none in this build"
if grep -q '^\[rate_limits\]' "$CONFIG_DIR/default.toml" 2>/dev/null; then
    case $RATE_LIMITS in
    raise)
        for group in LOGIN SIGNUP REFRESH; do
            RATE_ENV+=("AUTH__RATE_LIMITS__${group}__PER_IP=1000000000" "AUTH__RATE_LIMITS__${group}__PER_IDENTIFIER=1000000000")
        done
        RATE_NOTE="enabled with the configured backend, login/signup/refresh limits raised to 10^9 per window so they never trigger (every hit is still counted); lockout as configured"
        ;;
    off)
        RATE_ENV+=("AUTH__RATE_LIMITS__ENABLED=false")
        grep -q '^\[lockout\]' "$CONFIG_DIR/default.toml" && RATE_ENV+=("AUTH__LOCKOUT__ENABLED=false")
        RATE_NOTE="rate limits and lockout disabled (BENCH_RATE_LIMITS=off)"
        ;;
    config) RATE_NOTE="as configured (expect 429s)" ;;
    *) die "BENCH_RATE_LIMITS must be raise, off or config" ;;
    esac
fi

log "timing one Argon2id hash (default parameters)"
"$CARGO" run -q --release -p auth-core --example hash_time >"$WORK/hash_time.txt" ||
    die "cargo run --release -p auth-core --example hash_time failed"
kv() { awk -F= -v k="$2" '$1==k { print $2 }' "$1"; }
HASH_MS=$(kv "$WORK/hash_time.txt" hash_median_ms)
HASHER_MS=$(kv "$WORK/hash_time.txt" hasher_median_ms)
PAR_HPS=$(kv "$WORK/hash_time.txt" parallel_hashes_per_sec)
PAR_MS=$(kv "$WORK/hash_time.txt" parallel_median_ms)
[[ -n $HASH_MS ]] || die "hash_time printed no hash_median_ms line: $(cat "$WORK/hash_time.txt")"
LOGIN_BOUND=$(calc "$CORES*1000/$HASH_MS" 1)
log "one hash: ${HASH_MS} ms (median); login bound ${CORES} cores / one hash = ${LOGIN_BOUND}/s"

# ---- server --------------------------------------------------------------------------------

free_port() {
    local port _
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no free port on 127.0.0.1"
}

# start_server NAME DATABASE_URL: sets SERVER_PID, PORT, BASE
start_server() {
    local name=$1 url=$2 attempt
    local data=$WORK/$name/data
    mkdir -p "$data"
    for attempt in 1 2 3; do
        PORT=$(free_port) || exit 1
        BASE=http://127.0.0.1:$PORT
        # Only our settings: no AUTH_* or RUST_LOG from the caller's environment.
        (
            cd "$WORK/$name"
            for v in $(compgen -e); do
                case $v in AUTH_* | RUST_LOG) unset "$v" ;; esac
            done
            export AUTH_CONFIG_DIR=$CONFIG_DIR \
                AUTH__SERVER__HOST=127.0.0.1 \
                AUTH__SERVER__PORT=$PORT \
                AUTH__SERVER__PUBLIC_URL=$BASE \
                AUTH__DATABASE__URL=$url \
                AUTH__DATA_DIR=$data \
                AUTH__LOG__LEVEL=warn
            exec env ${RATE_ENV[@]+"${RATE_ENV[@]}"} "$BIN" serve
        ) >"$WORK/$name/server.out" 2>"$WORK/$name/server.log" &
        SERVER_PID=$!
        local i
        for i in $(seq 1 300); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then
                break
            fi
            if curl -fsS -m 2 -o /dev/null "$BASE/health/ready" 2>/dev/null; then
                log "$name: server $SERVER_PID ready on $BASE"
                return 0
            fi
            sleep 0.2
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            die "$name: server not ready after 60 s on $BASE; log: $(tail -5 "$WORK/$name/server.log")"
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        if grep -q 'cannot listen' "$WORK/$name/server.log"; then
            log "$name: port $PORT taken meanwhile, retrying ($attempt)"
            continue
        fi
        die "$name: the server exited at start-up: $(tail -5 "$WORK/$name/server.log")"
    done
    die "$name: could not bind a free port"
}

# ---- seeding -------------------------------------------------------------------------------

# signup_many PREFIX COUNT OUT: sign up COUNT accounts PREFIX<i>@bench.example.com, keep the
# token responses (one JSON per line) in OUT.
signup_many() {
    local prefix=$1 count=$2 out=$3
    local dir=$out.d
    mkdir -p "$dir"
    # One file per answer: parallel curls writing to one stream would interleave.
    seq 1 "$count" | xargs -P 4 -I{} curl -sS -m 60 -o "$dir/{}.json" -H 'Content-Type: application/json' \
        -d "{\"email\":\"${prefix}{}@bench.example.com\",\"password\":\"$PASSWORD\"}" \
        "$BASE/api/v1/auth/signup" ||
        die "seeding: a sign-up request failed (curl), answers in $dir"
    local i
    for i in $(seq 1 "$count"); do
        cat "$dir/$i.json" 2>/dev/null || true
        echo
    done >"$out"
    local got
    got=$(jq -rR 'fromjson? | .refresh_token // empty' "$out" | wc -l)
    [[ $got == "$count" ]] ||
        die "seeding: $got of $count sign-ups returned tokens; first answer: $(head -c 400 "$out")"
}

# ---- one load run --------------------------------------------------------------------------

declare -A R   # results: R[backend.scenario.key]
COMMANDS=()

# run_wrk BACKEND SCENARIO OUTFILE wrk-args...: runs wrk, bounded in time, in the foreground.
run_wrk() {
    local backend=$1 scenario=$2 out=$3
    shift 3
    timeout --kill-after=5 $((DURATION + 60)) wrk "$@" >"$out" 2>&1 ||
        die "$backend/$scenario: wrk failed: $(tail -5 "$out")"
    grep -q '^BENCH ' "$out" || die "$backend/$scenario: wrk printed no BENCH line: $(tail -5 "$out")"
}

record() {
    local backend=$1 scenario=$2 out=$3 k
    for k in rps ok_rps non2xx p50_ms p90_ms p99_ms max_ms err_connect err_read err_write err_timeout starved requests; do
        R[$backend.$scenario.$k]=$(field "$out" "$k")
    done
}

# measure BACKEND SCENARIO FUNCTION [PREPARE]: runs PREPARE (unmeasured), waits for a quiet
# machine, runs FUNCTION between CPU snapshots, records CPU and RSS.
measure() {
    local backend=$1 scenario=$2 fn=$3 prepare=${4:-}
    [[ -z $prepare ]] || "$prepare" "$backend"
    wait_for_quiet "$backend/$scenario"
    R[$backend.$scenario.background_pct]=$QUIET_BUSY
    local b0 t0 b1 t1 s0 s1 p0 p1 c0 c1 start end
    read -r b0 t0 < <(machine_ticks)
    s0=$(proc_ticks "$SERVER_PID")
    p0=$(pg_ticks)
    # `times` in this shell (not in a subshell): CPU of our waited-for children, i.e. wrk.
    times >"$WORK/times"
    c0=$(children_secs "$WORK/times")
    start=$(date +%s.%N)
    "$fn" "$backend" "$scenario"
    end=$(date +%s.%N)
    times >"$WORK/times"
    c1=$(children_secs "$WORK/times")
    read -r b1 t1 < <(machine_ticks)
    s1=$(proc_ticks "$SERVER_PID")
    p1=$(pg_ticks)
    local secs
    secs=$(calc "$end-$start" 3)
    R[$backend.$scenario.cpu_machine]=$(calc "$CORES*($b1-$b0)/($t1-$t0)" 2)
    R[$backend.$scenario.cpu_server]=$(calc "($s1-$s0)/$CLK_TCK/$secs" 2)
    R[$backend.$scenario.cpu_pg]=$(calc "($p1-$p0)/$CLK_TCK/$secs" 2)
    R[$backend.$scenario.cpu_wrk]=$(calc "($c1-$c0)/$secs" 2)
    # Whatever else ran meanwhile (other builds ...): the measurement is noisy when large.
    R[$backend.$scenario.cpu_other]=$(calc "${R[$backend.$scenario.cpu_machine]}-${R[$backend.$scenario.cpu_server]}-${R[$backend.$scenario.cpu_pg]}-${R[$backend.$scenario.cpu_wrk]}" 2)
    if awk -v o="${R[$backend.$scenario.cpu_other]}" 'BEGIN { exit !(o > 0.25) }'; then
        QUIET_NOTES+=("$backend/$scenario: other processes used ${R[$backend.$scenario.cpu_other]} cores on average during the run")
    fi
    R[$backend.$scenario.rss_kb]=$(status_kb "$SERVER_PID" VmRSS)
    kill -0 "$SERVER_PID" 2>/dev/null || die "$backend/$scenario: the server died; log: $(tail -5 "$WORK/$backend/server.log")"
    log "$backend/$scenario: $(grep -m1 '^BENCH ' "$WORK/$backend/$scenario.txt" | cut -c7-)"
}

# Access tokens live 15 minutes and waiting for a quiet machine can take longer: sign the
# /me accounts in again right before each /me run.
fresh_access_tokens() {
    local backend=$1 dir=$WORK/$1/logins
    rm -rf "$dir"
    mkdir -p "$dir"
    # sh -c SCRIPT DIR PASSWORD BASE, then xargs appends: LINE-NUMBER EMAIL
    awk '{ print NR, $0 }' "$WORK/$backend/emails.txt" | xargs -P 2 -L 1 sh -c \
        'curl -sS -m 60 -o "$0/$3.json" -H "Content-Type: application/json" -d "{\"email\":\"$4\",\"password\":\"$1\"}" "$2/api/v1/auth/login"' \
        "$dir" "$PASSWORD" "$BASE" ||
        die "$backend: signing in the /me accounts failed (curl), answers in $dir"
    local i
    for i in $(seq 1 "$USERS"); do
        jq -r '.access_token // empty' "$dir/$i.json" 2>/dev/null || true
    done >"$WORK/$backend/access_tokens.txt"
    [[ $(wc -l <"$WORK/$backend/access_tokens.txt") == "$USERS" ]] ||
        die "$backend: signing in the /me accounts: $(wc -l <"$WORK/$backend/access_tokens.txt") of $USERS answered tokens; first: $(head -c 300 "$dir/1.json")"
}

wrk_common=(-t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency)

scenario_me() {
    local out=$WORK/$1/$2.txt
    run_wrk "$1" "$2" "$out" "${wrk_common[@]}" -s "$LUA_DIR/me.lua" "$BASE/api/v1/me" -- "$WORK/$1/access_tokens.txt"
    record "$1" "$2" "$out"
}

scenario_refresh() {
    local out=$WORK/$1/$2.txt
    run_wrk "$1" "$2" "$out" "${wrk_common[@]}" -s "$LUA_DIR/refresh.lua" "$BASE/api/v1/auth/refresh" \
        -- "$WORK/$1/refresh_tokens.txt" "$THREADS"
    record "$1" "$2" "$out"
}

scenario_login() {
    local out=$WORK/$1/$2.txt
    run_wrk "$1" "$2" "$out" "${wrk_common[@]}" -s "$LUA_DIR/login.lua" "$BASE/api/v1/auth/login" \
        -- "$WORK/$1/emails.txt" "$PASSWORD"
    record "$1" "$2" "$out"
}

# GET /me (as in scenario_me) while a second wrk floods login; the flood starts 3 s before
# and ends 3 s after the measured /me run.
scenario_flood() {
    local backend=$1 out=$WORK/$1/$2.txt flood_out=$WORK/$1/$2-logins.txt
    timeout --kill-after=5 $((DURATION + 60)) wrk -t1 -c"$FLOOD_CONNS" -d"$((DURATION + 6))s" --timeout "$WRK_TIMEOUT" \
        --latency -s "$LUA_DIR/login.lua" "$BASE/api/v1/auth/login" -- "$WORK/$backend/emails.txt" "$PASSWORD" \
        >"$flood_out" 2>&1 &
    local flood=$!
    BG_PIDS+=("$flood")
    sleep 3
    run_wrk "$backend" "$2" "$out" "${wrk_common[@]}" -s "$LUA_DIR/me.lua" "$BASE/api/v1/me" -- "$WORK/$backend/access_tokens.txt"
    wait "$flood" || die "$backend/$2: the login flood wrk failed: $(tail -5 "$flood_out")"
    BG_PIDS=()
    grep -q '^BENCH ' "$flood_out" || die "$backend/$2: the login flood printed no BENCH line"
    record "$backend" "$2" "$out"
    record "$backend" "$2_logins" "$flood_out"
}

# ---- one backend ---------------------------------------------------------------------------

bench_backend() {
    local backend=$1 url
    mkdir -p "$WORK/$backend"
    case $backend in
    postgres)
        pg_isready -q -t 5 || die "PostgreSQL does not answer at $PGHOST:$PGPORT (pg_isready)"
        PG_DB=auth_bench_$(date +%Y%m%d%H%M%S)_$$
        psql -v ON_ERROR_STOP=1 -qAt -d postgres -c "CREATE DATABASE \"$PG_DB\"" >/dev/null ||
            die "cannot create database $PG_DB (psql as $PGUSER@$PGHOST:$PGPORT)"
        url=postgres://$PGUSER@$PGHOST:$PGPORT/$PG_DB
        R[$backend.version]=$(psql -qAt -d postgres -c 'SHOW server_version' | awk '{ print $1 }')
        ;;
    sqlite)
        url=sqlite://$WORK/sqlite/db/auth.db
        R[$backend.version]=bundled
        ;;
    esac
    R[$backend.url]=${url//$WORK/\$TMP}

    start_server "$backend" "$url"

    # Warm-up on routes that do not hash, then idle RSS.
    timeout 30 wrk -t1 -c4 -d2s "$BASE/health/ready" >"$WORK/$backend/warmup.txt" 2>&1 ||
        die "$backend: warm-up failed: $(tail -3 "$WORK/$backend/warmup.txt")"
    curl -fsS -m 5 -o /dev/null "$BASE/.well-known/jwks.json" || die "$backend: GET /.well-known/jwks.json failed"
    sleep 2
    R[$backend.idle_rss_kb]=$(status_kb "$SERVER_PID" VmRSS)
    log "$backend: idle RSS after warm-up $(mib "${R[$backend.idle_rss_kb]}") MiB"

    # Seed: USERS accounts for /me and login, REFRESH_SESSIONS accounts whose sessions feed
    # the refresh chains.
    log "$backend: seeding $USERS + $REFRESH_SESSIONS accounts"
    signup_many "u" "$USERS" "$WORK/$backend/users.jsonl"
    signup_many "r" "$REFRESH_SESSIONS" "$WORK/$backend/refresh_sessions.jsonl"
    jq -rR 'fromjson? | .access_token // empty' "$WORK/$backend/users.jsonl" >"$WORK/$backend/access_tokens.txt"
    jq -rR 'fromjson? | .user.email // empty' "$WORK/$backend/users.jsonl" >"$WORK/$backend/emails.txt"
    jq -rR 'fromjson? | .refresh_token // empty' "$WORK/$backend/refresh_sessions.jsonl" >"$WORK/$backend/refresh_tokens.txt"
    [[ $(wc -l <"$WORK/$backend/emails.txt") == "$USERS" ]] || die "$backend: sign-up answers carry no user.email"

    # Sanity: the token works, and login answers 200.
    local code
    code=$(curl -sS -m 10 -o "$WORK/$backend/me.json" -w '%{http_code}' \
        -H "Authorization: Bearer $(head -1 "$WORK/$backend/access_tokens.txt")" "$BASE/api/v1/me")
    [[ $code == 200 ]] || die "$backend: GET /api/v1/me with a fresh token answered $code: $(head -c 300 "$WORK/$backend/me.json")"
    code=$(curl -sS -m 30 -o "$WORK/$backend/login.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"email\":\"$(head -1 "$WORK/$backend/emails.txt")\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/auth/login")
    [[ $code == 200 ]] || die "$backend: POST /api/v1/auth/login answered $code: $(head -c 300 "$WORK/$backend/login.json")"
    sleep 2
    R[$backend.seeded_rss_kb]=$(status_kb "$SERVER_PID" VmRSS)
    log "$backend: RSS after seeding (idle, after hashing) $(mib "${R[$backend.seeded_rss_kb]}") MiB"

    log "$backend: GET /api/v1/me"
    measure "$backend" me scenario_me fresh_access_tokens
    log "$backend: refresh with chained rotation"
    measure "$backend" refresh scenario_refresh
    log "$backend: login"
    measure "$backend" login scenario_login
    log "$backend: GET /api/v1/me during a login flood"
    measure "$backend" flood scenario_flood fresh_access_tokens

    sleep 2
    R[$backend.end_rss_kb]=$(status_kb "$SERVER_PID" VmRSS)
    R[$backend.peak_rss_kb]=$(status_kb "$SERVER_PID" VmHWM)
    R[$backend.threads]=$(status_kb "$SERVER_PID" Threads)
    log "$backend: peak RSS $(mib "${R[$backend.peak_rss_kb]}") MiB"
    stop_server
    R[$backend.log_lines]=$(grep -c . "$WORK/$backend/server.log" || true)
    R[$backend.log_sample]=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/$backend/server.log" |
        awk '{ line = $0; sub(/^[^ ]+ +/, "", line) } !seen[line]++ && n++ < 5')
    [[ $backend == postgres ]] && drop_database
    return 0
}

# ---- run -----------------------------------------------------------------------------------

RAN=()
for backend in $BACKENDS; do
    bench_backend "$backend"
    RAN+=("$backend")
done

# ---- report --------------------------------------------------------------------------------

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
# The harness and its report do not count: they are usually what is uncommitted.
[[ -n $(git status --porcelain -- . ':!scripts/bench.sh' ':!scripts/bench' ':!docs/benchmarks.md' 2>/dev/null || true) ]] &&
    dirty=" (working tree with uncommitted changes)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo)
threads_per_core=$(lscpu 2>/dev/null | awk -F: '/Thread\(s\) per core/ { gsub(/ /, "", $2); print $2 }')
kernel=$(uname -r)
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR==1 { print $1, $2 }')
rustc_version=$(rustc --version 2>/dev/null || echo unknown)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

ms() { [[ -n ${1:-} ]] && printf '%.2f' "$1" || printf 'n/a'; }
num() { [[ -n ${1:-} ]] && printf "%'.0f" "$1" || printf 'n/a'; }
r() { printf '%s' "${R[$1]:-}"; }

# A row of the per-backend table.
row() {
    local b=$1 s=$2 label=$3 cmd=$4
    local m=${s%_logins}
    printf '| %s | `%s` | %s | %s | %s | %s | %s | %s | %s/%s/%s/%s | %s / %s / %s / %s of %s | %s |\n' \
        "$label" "$cmd" "$(num "$(r "$b.$s.ok_rps")")" "$(num "$(r "$b.$s.rps")")" \
        "$(ms "$(r "$b.$s.p50_ms")")" "$(ms "$(r "$b.$s.p99_ms")")" "$(ms "$(r "$b.$s.max_ms")")" \
        "$(r "$b.$s.non2xx")" "$(r "$b.$s.err_connect")" "$(r "$b.$s.err_read")" "$(r "$b.$s.err_write")" \
        "$(r "$b.$s.err_timeout")" "$(r "$b.$m.cpu_server")" "$(r "$b.$m.cpu_pg")" "$(r "$b.$m.cpu_wrk")" \
        "$(r "$b.$m.cpu_other")" "$(r "$b.$m.cpu_machine")" "$(mib "$(r "$b.$m.rss_kb")")"
}

# verdict KIND VALUE TARGET: "met"/"missed" with the margin in percent.
#   min: VALUE must be >= TARGET;  max: VALUE must be < TARGET
verdict() {
    local kind=$1 v=$2 t=$3
    [[ -n $v ]] || {
        echo "not measured"
        return
    }
    awk -v k="$kind" -v v="$v" -v t="$t" 'BEGIN {
        d = (v - t) / t * 100
        if (k == "min") { if (v >= t) printf "**met** (+%.0f %% above)", d; else printf "**missed** by %.0f %% (%.0f %% of target)", -d, v / t * 100 }
        else            { if (v <  t) printf "**met** (%.0f %% below)", -d;  else printf "**missed** by %.0f %% (%.1fx the limit)", d, v / t }
    }'
}

login_ratio() { [[ -n $(r "$1.login.ok_rps") ]] && calc "$(r "$1.login.ok_rps")/$LOGIN_BOUND" 3 || true; }

{
    cat <<EOF
# Benchmarks

Generated by \`make bench\` (\`scripts/bench.sh\`); do not edit by hand, run it again.

- Date: $now
- Commit: \`$commit\`$dirty${BIN_NOTE:+; $BIN_NOTE}
- Machine: $CORES CPUs ($(nproc --all) online; ${threads_per_core:-?} thread(s) per core), $cpu_model, $mem_total RAM, Linux $kernel
- Tools: $wrk_version, $rustc_version, release profile (thin LTO)
- Server: \`auth-http serve\` release build, defaults of \`config/default.toml\` (EdDSA access
  tokens, Argon2id m=19456 KiB t=2 p=1, one hash slot per core, actix one worker per core),
  \`AUTH__LOG__LEVEL=warn\`, on 127.0.0.1; wrk on the same machine (so client and server
  share the $CORES CPUs).
- Rate limits: $RATE_NOTE.

## Password hashing

\`cargo run --release -p auth-core --example hash_time\` (median of 20 runs after 2 warm-up runs):

| measurement | value |
|---|---|
| one Argon2id hash, \`argon2\` directly | $HASH_MS ms |
| one hash through the server's \`Argon2Hasher\` (from a tokio runtime) | $HASHER_MS ms |
| one hash while all $CORES CPUs hash at once | $PAR_MS ms |
| hashes/s with all $CORES CPUs hashing | $PAR_HPS |
| **login bound** = $CORES cores / one-hash time | **$LOGIN_BOUND logins/s** |

## Commands

\`\`\`sh
cargo build --release --bin auth-http
cargo run --release -p auth-core --example hash_time
# per backend: a fresh server, warmed up with
wrk -t1 -c4 -d2s http://127.0.0.1:PORT/health/ready
# seeded with $USERS + $REFRESH_SESSIONS sign-ups (curl), then:
wrk ${wrk_common[*]} -s scripts/bench/me.lua      http://127.0.0.1:PORT/api/v1/me -- access_tokens.txt
wrk ${wrk_common[*]} -s scripts/bench/refresh.lua http://127.0.0.1:PORT/api/v1/auth/refresh -- refresh_tokens.txt $THREADS
wrk ${wrk_common[*]} -s scripts/bench/login.lua   http://127.0.0.1:PORT/api/v1/auth/login -- emails.txt PASSWORD
# login flood and /me at once (the flood starts 3 s earlier and ends 3 s later):
wrk -t1 -c$FLOOD_CONNS -d$((DURATION + 6))s --timeout $WRK_TIMEOUT --latency -s scripts/bench/login.lua http://127.0.0.1:PORT/api/v1/auth/login -- emails.txt PASSWORD &
wrk ${wrk_common[*]} -s scripts/bench/me.lua      http://127.0.0.1:PORT/api/v1/me -- access_tokens.txt
\`\`\`

- \`me.lua\`: one valid access token per wrk thread (each of a different account), static request.
- \`refresh.lua\`: each wrk thread owns $((REFRESH_SESSIONS / THREADS)) sessions' refresh tokens in a queue; every
  request takes one, every 200 response puts back the rotated successor, so each token is
  presented exactly once (no reuse, no grace window). Any status but 200 is an error.
- \`login.lua\`: round robin over the $USERS seeded accounts, correct password; anything but a
  200 with an access token is an error.
- Requests/s (2xx) counts only successful responses; latencies are wrk's (from the request
  written to the response read). "CPU" is the average number of cores busy during the run:
  the server process, PostgreSQL's processes, the wrk processes, anything else (other
  processes on the machine: a large value means a noisy measurement), and the whole machine.
  The flood rows share one measurement (both wrk processes).

EOF

    for b in "${RAN[@]}"; do
        case $b in postgres) title="PostgreSQL $(r postgres.version)" ;; sqlite) title="SQLite (bundled, WAL, file in a temp dir)" ;; esac
        cat <<EOF
## $title

Database URL: \`$(r "$b.url")\`

| scenario | wrk | requests/s (2xx) | requests/s (all) | p50 ms | p99 ms | max ms | non-2xx | socket errors connect/read/write/timeout | CPU cores: server / PostgreSQL / wrk / other, of machine | RSS after, MiB |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
        row "$b" me "GET /api/v1/me" "-t$THREADS -c$CONNS"
        row "$b" refresh "POST /auth/refresh, chained rotation" "-t$THREADS -c$CONNS"
        row "$b" login "POST /auth/login" "-t$THREADS -c$CONNS"
        row "$b" flood "GET /api/v1/me during login flood" "-t$THREADS -c$CONNS"
        row "$b" flood_logins "(the login flood itself)" "-t1 -c$FLOOD_CONNS"
        cat <<EOF

| memory and other | value |
|---|---|
| idle RSS after start and warm-up (no hash yet) | $(mib "$(r "$b.idle_rss_kb")") MiB |
| idle RSS after seeding ($((USERS + REFRESH_SESSIONS + 1)) password hashes done) | $(mib "$(r "$b.seeded_rss_kb")") MiB |
| RSS at the end, idle | $(mib "$(r "$b.end_rss_kb")") MiB |
| peak RSS (VmHWM) over the whole run | $(mib "$(r "$b.peak_rss_kb")") MiB |
| server threads at the end | $(r "$b.threads") |
| login ratio: logins/s ÷ bound ($LOGIN_BOUND/s) | $(login_ratio "$b") |
| refresh requests that found no token (starved) | $(r "$b.refresh.starved") |
| machine CPU busy before each run (%): me, refresh, login, flood | $(r "$b.me.background_pct"), $(r "$b.refresh.background_pct"), $(r "$b.login.background_pct"), $(r "$b.flood.background_pct") |
| server log lines at level warn and above | $(r "$b.log_lines") |

EOF
        if [[ -n $(r "$b.log_sample") ]]; then
            printf 'First distinct server log lines:\n\n```text\n%s\n```\n\n' "$(r "$b.log_sample" | cut -c1-300)"
        fi
    done

    tb=postgres
    [[ " ${RAN[*]} " == *" postgres "* ]] || tb=${RAN[0]}
    cat <<EOF
## Targets

Targets are for a 2-core machine, \`wrk -t2 -c32\`, the server on PostgreSQL; measured here on
$CORES CPUs against $tb.

| target | measured | verdict |
|---|---|---|
| GET /api/v1/me >= $(num $T_ME_RPS) req/s | $(num "$(r "$tb.me.ok_rps")") req/s | $(verdict min "$(r "$tb.me.ok_rps")" $T_ME_RPS) |
| GET /api/v1/me p99 < $T_ME_P99_MS ms | $(ms "$(r "$tb.me.p99_ms")") ms | $(verdict max "$(r "$tb.me.p99_ms")" $T_ME_P99_MS) |
| refresh with rotation >= $(num $T_REFRESH_RPS)/s | $(num "$(r "$tb.refresh.ok_rps")")/s | $(verdict min "$(r "$tb.refresh.ok_rps")" $T_REFRESH_RPS) |
| login >= 90 % of $CORES cores / one-hash time ($LOGIN_BOUND/s) | $(calc "$(r "$tb.login.ok_rps")" 1)/s = $(calc "100*$(login_ratio "$tb")" 0) % | $(verdict min "$(login_ratio "$tb")" $T_LOGIN_RATIO) |
| GET /api/v1/me p99 < $T_FLOOD_P99_MS ms during a login flood | $(ms "$(r "$tb.flood.p99_ms")") ms | $(verdict max "$(r "$tb.flood.p99_ms")" $T_FLOOD_P99_MS) |
| idle RSS < $T_IDLE_RSS_MB MB (after warm-up, before any hash) | $(mib "$(r "$tb.idle_rss_kb")") MiB | $(verdict max "$(calc "$(r "$tb.idle_rss_kb")/1024" 2)" $T_IDLE_RSS_MB) |
| RSS under load < $T_LOAD_RSS_MB MB (peak VmHWM) | $(mib "$(r "$tb.peak_rss_kb")") MiB | $(verdict max "$(calc "$(r "$tb.peak_rss_kb")/1024" 2)" $T_LOAD_RSS_MB) |

Margins are relative to the target. MB here are MiB (VmRSS/VmHWM in KiB ÷ 1024).
EOF
    if ((${#QUIET_NOTES[@]} > 0)); then
        printf '\n**Noisy measurement**: other processes used the CPU during some runs, so the numbers\nabove may be lower than the server can do:\n\n'
        printf -- '- %s\n' "${QUIET_NOTES[@]}"
    fi
} >"$WORK/benchmarks.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/benchmarks.md" "$OUT"
log "report written to ${OUT#"$ROOT"/}"

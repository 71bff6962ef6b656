#!/usr/bin/env bash
# cluster-demo.sh: a black-box walk through a three-node Aspen cluster, using
# only the two binaries, the way an operator would.
#
# It builds aspen-node and aspen-cli into a temporary directory, starts three
# nodes on 127.0.0.1, forms a cluster (init, add-learner, change-membership),
# writes and reads keys through every node, kills the leader with SIGKILL and
# times the failover, keeps writing (and CAS) on the survivors, restarts the
# old leader and waits until it serves what it missed, then SIGKILLs the whole
# cluster, restarts it and checks that every acknowledged write survived.
#
# Run it from anywhere:  bash scripts/cluster-demo.sh
# It prints step headers and ends with PASS (exit 0), or stops at the first
# failure with a FAIL line, the last lines of each node's log, and exit 1.
#
# Environment:
#   ASPEN_DEMO_BASE_PORT  first UDP port to try (default 47400); the script
#                         uses three consecutive free ports from there on
#   ASPEN_DEMO_KEEP=1     keep the temporary directory (data dirs and logs)
#
# Needs: go, python3 (to read --json output).
set -euo pipefail
cd "$(dirname "$0")/.."

START_NS=$(date +%s%N)
COOKIE="demo-$RANDOM$RANDOM-$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aspen-demo.XXXXXX")
BIN="$WORK/bin"
declare -A PID=() PORT=() TICKET=() ACKED=()
UNKNOWN_OUTCOMES=0 # writes the CLI reported as "outcome unknown" (exit 3) and that were retried

# ---------------------------------------------------------------- helpers

step() { printf '\n=== %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

fail() {
  printf '\nFAIL: %s\n' "$*" >&2
  for i in 1 2 3; do
    if [ -f "$WORK/n$i.log" ]; then
      printf -- '--- last lines of node %s log (%s)\n' "$i" "$WORK/n$i.log" >&2
      tail -n 15 "$WORK/n$i.log" >&2 || true
    fi
  done
  exit 1
}

cleanup() {
  local rc=$?
  for i in "${!PID[@]}"; do
    kill -9 "${PID[$i]}" 2>/dev/null || true
    wait "${PID[$i]}" 2>/dev/null || true
  done
  if [ "${ASPEN_DEMO_KEEP:-}" = 1 ]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v go >/dev/null || fail "go is not on PATH (see https://go.dev/doc/install)"
command -v python3 >/dev/null || fail "python3 is needed to read the CLI's --json output"

# json EXPR: evaluate a Python expression over the JSON document on stdin (d);
# prints null as "null".
json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print("null" if v is None else v)' "$1"
}

# cli ARGS...: aspen-cli with a per-call limit, so a dead node costs seconds, not 30s.
cli() { "$BIN/aspen-cli" --timeout 5s "$@"; }

# on NODE ARGS...: aspen-cli through node NODE's own ticket.
on() {
  local n=$1
  shift
  cli --ticket "${TICKET[$n]}" "$@"
}

# port_free PORT: true when nothing listens on UDP 127.0.0.1:PORT.
port_free() {
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# wait_until DESC SECONDS CMD...: run CMD every 100ms until it succeeds, or fail.
wait_until() {
  local desc=$1 secs=$2
  shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $desc"
    sleep 0.1
  done
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

start_node() {
  local i=$1
  "$BIN/aspen-node" --node-id "$i" --cookie "$COOKIE" --data-dir "$WORK/n$i" \
    --bind "127.0.0.1:${PORT[$i]}" --log-level warn >>"$WORK/n$i.log" 2>&1 &
  PID[$i]=$!
}

kill_node() {
  local i=$1
  kill -9 "${PID[$i]}"
  wait "${PID[$i]}" 2>/dev/null || true
  unset "PID[$i]"
}

ticket_written() { alive "$1" || fail "node $1 exited; see its log"; [ -s "$WORK/n$1/cluster-ticket.txt" ]; }

# write DESC CMD...: run an idempotent write (kv set, batch-write,
# add-learner). Exit 3 with "outcome unknown" is retried: see
# docs/operations.md, "Known issues".
write() {
  local desc=$1 out rc
  shift
  for _ in 1 2 3 4 5; do
    rc=0
    out=$("$@" 2>&1) || rc=$?
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 3 ] || fail "$desc: exit $rc: $out"
    UNKNOWN_OUTCOMES=$((UNKNOWN_OUTCOMES + 1))
    info "($desc: exit 3, retrying: $out)"
    sleep 0.2
  done
  fail "$desc: still failing after 5 tries: $out"
}

# ack KEY VALUE: record an acknowledged write (the last one of a key wins).
ack() {
  ACKED[$1]=$2
  printf '%s\t%s\n' "$1" "$2" >>"$WORK/acked.tsv"
}

# set_key NODE KEY VALUE: write through NODE and remember it as acknowledged.
set_key() {
  write "set $2 via node $1" on "$1" kv set "$2" "$3"
  ack "$2" "$3"
}

# get_value NODE KEY [--consistency stale]: the key's value, "null" when it
# does not exist, "error" when the call failed.
get_value() {
  local n=$1 k=$2 out
  shift 2
  out=$(on "$n" kv get "$k" --json "$@" 2>/dev/null) || { echo error; return 0; }
  json 'd["value"] if d["does_exist"] else None' <<<"$out"
}

# leader_of NODE: the leader NODE believes in ("null" when none or unreachable).
leader_of() {
  local out
  out=$(on "$1" cluster metrics --json 2>/dev/null) || { echo null; return 0; }
  json 'd["current_leader"]' <<<"$out"
}

# agreed_leader NODES...: succeeds, setting LEADER, when every node names the
# same non-null leader.
agreed_leader() {
  local first="" l
  for n in "$@"; do
    l=$(leader_of "$n")
    [ "$l" != null ] || return 1
    [ -z "$first" ] || [ "$l" = "$first" ] || return 1
    first=$l
  done
  LEADER=$first
}

# --------------------------------------------------------------- the demo

step "1. build aspen-node and aspen-cli into $BIN"
CGO_ENABLED=0 go build -o "$BIN/" ./cmd/aspen-node ./cmd/aspen-cli
info "built in $(elapsed_ms "$START_NS") ms"

step "2. pick three free UDP ports and start three nodes"
base=${ASPEN_DEMO_BASE_PORT:-47400}
for _ in $(seq 1 100); do
  if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)); then break; fi
  base=$((base + 3))
done
port_free "$base" || fail "found no three free UDP ports from ${ASPEN_DEMO_BASE_PORT:-47400} on"
for i in 1 2 3; do
  PORT[$i]=$((base + i - 1))
  start_node "$i"
  info "node $i: pid ${PID[$i]}, udp 127.0.0.1:${PORT[$i]}, data dir $WORK/n$i"
done
for i in 1 2 3; do
  wait_until "node $i's ticket file" 20 ticket_written "$i"
  # The ticket written at first start names this node only, so a call made
  # with it is answered by this node and no other.
  TICKET[$i]=$(cat "$WORK/n$i/cluster-ticket.txt")
  id=$(on "$i" cluster health --json | json 'd["node_id"]')
  [ "$id" = "$i" ] || fail "node $i's ticket reached node $id"
done
info "all three tickets written; each answers for its own node"

step "3. before init: health works (degraded), kv get refuses with NOT_INITIALIZED"
st=$(on 1 cluster health --json | json 'd["status"]')
[ "$st" = degraded ] || fail "health before init: want degraded, got $st"
rc=0
out=$(on 1 kv get anything 2>&1) || rc=$?
[ "$rc" = 3 ] && grep -q NOT_INITIALIZED <<<"$out" || fail "kv get before init: want exit 3 NOT_INITIALIZED, got exit $rc: $out"
info "health: $st; kv get: exit 3, NOT_INITIALIZED"

step "4. cluster init on node 1, add nodes 2 and 3 as learners, then make all three voters"
rc=0
out=$(on 1 cluster init 2>&1) || rc=$?
if [ "$rc" = 3 ]; then # outcome unknown: it applied when the node now says it is initialized
  UNKNOWN_OUTCOMES=$((UNKNOWN_OUTCOMES + 1))
  [ "$(on 1 cluster health --json | json 'd["initialized"]')" = True ] || fail "cluster init: $out"
elif [ "$rc" != 0 ]; then
  fail "cluster init: exit $rc: $out"
fi
info "node 1 initialized: it is the single voter"
for i in 2 3; do
  key=$(on "$i" cluster health --json | json 'd["endpoint_id"]')
  addr="$key@127.0.0.1:${PORT[$i]}"
  write "add-learner $i" on 1 cluster add-learner --node-id "$i" --addr "$addr"
  info "node $i added as learner at $addr"
done
write "change-membership 1 2 3" on 1 cluster change-membership 1 2 3
voters=$(on 1 cluster status --json | json 'sum(1 for x in d["nodes"] if x["is_voter"])')
[ "$voters" = 3 ] || fail "cluster status: want 3 voters, got $voters"
on 1 cluster status
wait_until "all nodes to agree on the leader" 20 agreed_leader 1 2 3
terms=$(for i in 1 2 3; do on "$i" cluster metrics --json | json 'd["current_term"]'; done | sort -u | wc -l)
[ "$terms" = 1 ] || fail "nodes report different terms"
info "3 voters; all nodes agree: leader node $LEADER, one term"

check_stale() { [ "$(get_value "$1" demo/before/10 --consistency stale)" = value-10 ]; }

step "5. write through node 1, read through nodes 2 and 3"
for k in $(seq -w 1 10); do set_key 1 "demo/before/$k" "value-$k"; done
write "batch-write via node 1" on 1 kv batch-write demo/batch/a=alpha demo/batch/b=beta
ack demo/batch/a alpha
ack demo/batch/b beta
for n in 2 3; do
  for k in demo/before/01 demo/before/10 demo/batch/b; do
    got=$(get_value "$n" "$k")
    [ "$got" = "${ACKED[$k]}" ] || fail "linearizable read of $k via node $n: want ${ACKED[$k]}, got $got"
  done
  wait_until "node $n to replicate demo/before/10" 10 check_stale "$n"
done
info "12 keys written via node 1; linearizable and stale reads via nodes 2 and 3 agree"

step "6. kill -9 the leader and time the failover"
old=$LEADER
survivors=()
for i in 1 2 3; do [ "$i" = "$old" ] || survivors+=("$i"); done
t0=$(date +%s%N)
kill_node "$old"
info "killed node $old (the leader); survivors: ${survivors[*]}"
new_leader() { agreed_leader "${survivors[@]}" && [ "$LEADER" != "$old" ]; }
wait_until "a new leader among nodes ${survivors[*]}" 30 new_leader
info "new leader: node $LEADER, agreed by both survivors after $(elapsed_ms "$t0") ms"

step "7. keep writing through a survivor, CAS, and read old data"
s=${survivors[0]}
other=${survivors[1]}
for k in $(seq -w 1 10); do set_key "$s" "demo/during/$k" "while-node-$old-was-down-$k"; done
got=$(get_value "$other" demo/before/05)
[ "$got" = value-05 ] || fail "data written before the failover: want value-05, got $got"
# create-if-absent, then compare-and-swap, then a CAS that must conflict
write "cas create demo/counter" on "$s" kv cas demo/counter --new-value 1
rc=0
out=$(on "$other" kv cas demo/counter --expected 1 --new-value 2 --json 2>&1) || rc=$?
if [ "$rc" = 3 ]; then
  # the outcome is unknown: it applied exactly when the key now holds 2
  UNKNOWN_OUTCOMES=$((UNKNOWN_OUTCOMES + 1))
  info "(cas 1->2: exit 3, outcome unknown: $out)"
  [ "$(get_value "$other" demo/counter)" = 2 ] || write "cas 1->2" on "$other" kv cas demo/counter --expected 1 --new-value 2
elif [ "$rc" != 0 ]; then
  fail "cas demo/counter 1->2: exit $rc: $out"
fi
ack demo/counter 2
rc=0
out=$(on "$s" kv cas demo/counter --expected 1 --new-value 3 --json 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "stale cas: want exit 1 (conflict), got exit $rc: $out"
actual=$(json 'd["actual_value"]' <<<"$out")
[ "$actual" = 2 ] || fail "stale cas: want actual_value 2, got $actual"
info "10 keys written via node $s; CAS 1->2 succeeded via node $other; stale CAS 1->3 conflicted (exit 1, actual 2)"

step "8. restart node $old on its data dir and port; wait until it serves what it missed"
t0=$(date +%s%N)
start_node "$old"
caught_up() {
  alive "$old" || fail "node $old exited after restart; see its log"
  local k
  for k in demo/during/01 demo/during/10 demo/counter; do
    [ "$(get_value "$old" "$k" --consistency stale)" = "${ACKED[$k]}" ] || return 1
  done
}
wait_until "node $old to serve keys written while it was down" 30 caught_up
info "node $old serves the new keys locally (stale reads) $(elapsed_ms "$t0") ms after restart"
wait_until "all nodes to agree on the leader" 20 agreed_leader 1 2 3
info "all three nodes agree on leader node $LEADER"
set_key "$old" demo/after/1 written-via-restarted-node

step "9. kill -9 the whole cluster, restart it, check every acknowledged key"
for i in 1 2 3; do kill_node "$i"; done
info "all three nodes killed; ${#ACKED[@]} acknowledged keys to find"
t0=$(date +%s%N)
for i in 1 2 3; do start_node "$i"; done
wait_until "a leader after the full restart" 30 agreed_leader 1 2 3
info "leader node $LEADER elected $(elapsed_ms "$t0") ms after the restart"
keys=("${!ACKED[@]}")
for n in 1 2 3; do
  res=$(on "$n" kv batch-read "${keys[@]}" --json)
  missing=$(python3 -c '
import json, sys
want = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]))
got = {r["key"]: (r["value"] if r["does_exist"] else None) for r in json.load(sys.stdin)["results"]}
bad = ["%s: want %r, got %r" % (k, v, got.get(k)) for k, v in sorted(want.items()) if got.get(k) != v]
print("; ".join(bad))' "$WORK/acked.tsv" <<<"$res")
  [ -z "$missing" ] || fail "after the full restart, via node $n: $missing"
  info "via node $n: all ${#keys[@]} acknowledged keys present with their values"
done

step "PASS"
info "failover, catch-up and full-cluster durability checked in $(elapsed_ms "$START_NS") ms"
if [ "$UNKNOWN_OUTCOMES" -gt 0 ]; then
  info "note: $UNKNOWN_OUTCOMES write(s) were reported as 'outcome unknown' (exit 3) and retried; see docs/operations.md, Known issues"
fi
echo PASS

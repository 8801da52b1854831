#!/usr/bin/env bash
# The HTTP server against a do-nothing hyper server on the same stack, side by side in one run:
# wrk (docs/wrk-orders.lua, POST /v1/orders) against a fresh `flashsale-engine serve` and against
# benches/http_null_server.rs, alternating which goes first, PAIRS times. Prints each run's
# requests/s and non-2xx count, the medians and the median of the per-pair ratios
# (server / do-nothing). Needs wrk and curl.
#
#   cargo build --release -p flashsale-server --bin flashsale-engine -p flashsale --example http_null_server
#   benches/http_vs_null.sh [PAIRS] [SECONDS]        (defaults: 5 pairs of 6 s runs)
#
# Binaries are taken from $TARGET_DIR/release (default: target/release).
set -euo pipefail
pairs=${1:-5}
seconds=${2:-6}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TARGET_DIR:-$here/target}/release
engine=$bin/flashsale-engine
null=$bin/examples/http_null_server
for tool in wrk curl "$engine" "$null"; do
    command -v "$tool" >/dev/null || { echo "http_vs_null: $tool not found (build or install it)" >&2; exit 1; }
done
token=bench
port_engine=${PORT_ENGINE:-18281}
port_null=${PORT_NULL:-18282}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_listening() { # port
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.05
    done
    echo "http_vs_null: nothing listens on $1" >&2
    exit 1
}

one_run() { # name port -> prints "req_per_s non_2xx"
    local out
    out=$(wrk -t2 -c64 -d"${seconds}s" -s "$here/docs/wrk-orders.lua" "http://127.0.0.1:$2")
    local rate bad
    rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    echo "$rate ${bad:-0}"
}

run_engine() {
    FLASHSALE_ADMIN_TOKEN=$token "$engine" serve --http "127.0.0.1:$port_engine" \
        --tcp "127.0.0.1:$((port_engine + 1000))" --shards 2 >/dev/null 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_listening "$port_engine"
    curl -s -o /dev/null -X PUT "127.0.0.1:$port_engine/v1/skus/1" -H "Authorization: Bearer $token" \
        -d '{"stock_total":100000000000,"per_user_limit":1000000,"hold_ttl_ms":3600000}'
    one_run engine "$port_engine"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_null() {
    "$null" "127.0.0.1:$port_null" 2 >/dev/null 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_listening "$port_null"
    one_run null "$port_null"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

printf '%-5s %-7s %12s %8s %12s %8s %7s\n' pair load engine_rps non2xx null_rps non2xx ratio
ratios=(); engines=(); nulls=()
for pair in $(seq "$pairs"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if (( pair % 2 )); then e=$(run_engine); n=$(run_null); else n=$(run_null); e=$(run_engine); fi
    read -r e_rate e_bad <<<"$e"; read -r n_rate n_bad <<<"$n"
    ratio=$(awk -v a="$e_rate" -v b="$n_rate" 'BEGIN {printf "%.3f", a / b}')
    ratios+=("$ratio"); engines+=("$e_rate"); nulls+=("$n_rate")
    printf '%-5s %-7s %12s %8s %12s %8s %7s\n' "$pair" "$load" "$e_rate" "$e_bad" "$n_rate" "$n_bad" "$ratio"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median engine $(median "${engines[@]}") req/s, do-nothing $(median "${nulls[@]}") req/s, median ratio $(median "${ratios[@]}")"

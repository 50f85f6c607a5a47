#!/usr/bin/env bash
# Instructions per operation, aiolite vs rusqlite, counted by callgrind (stable on noisy
# machines). Usage: bench/profile.sh [workload ...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p aiolite-bench --bin probe
probe=target/release/probe
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
count() { # workload engine ops -> instructions
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$probe" "$1" "$2" "$dir/db-$1-$2.db" "$3" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
k1=2000; k2=12000
printf '%-14s %14s %14s %8s\n' workload rusqlite/op aiolite/op ratio
for w in "${@:-point_select insert_txn scan_all stream}"; do
    for w1 in $w; do
        "$probe" "$w1" rusqlite "$dir/db-$w1-rusqlite.db" 0; "$probe" "$w1" aiolite "$dir/db-$w1-aiolite.db" 0
        r1=$(count "$w1" rusqlite $k1); r2=$(count "$w1" rusqlite $k2)
        a1=$(count "$w1" aiolite $k1); a2=$(count "$w1" aiolite $k2)
        r=$(( (r2 - r1) / (k2 - k1) )); a=$(( (a2 - a1) / (k2 - k1) ))
        printf '%-14s %14d %14d %8.2f\n' "$w1" "$r" "$a" "$(echo "$a / $r" | bc -l)"
    done
done

#!/usr/bin/env bash
# Load test of the users_api example with wrk (Debian package `wrk`): GET /users/{id} and
# POST /users at 64 connections against the release build, on a fresh database file.
# Usage: examples/users_api/loadtest.sh [seconds]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q --example users_api --features axum
dir=$(mktemp -d)
addr=127.0.0.1:3917
./target/release/examples/users_api --db "$dir/app.db" --addr "$addr" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -s "http://$addr/users?limit=1" >/dev/null 2>&1 && break; sleep 0.1; done
# Seed 1000 users for the GETs.
for i in $(seq 1 1000); do
  printf '{"name":"seed %d","email":"seed-%d@example.com","score":%d}\n' "$i" "$i" $((i % 100))
done | while read -r body; do
  curl -s -o /dev/null -X POST -H 'content-type: application/json' -d "$body" "http://$addr/users"
done
echo "== GET /users/{id}, 64 connections, ${secs}s"
wrk -t2 -c64 -d"${secs}s" --latency -s examples/users_api/get_user.lua "http://$addr" | grep -E "Requests/sec|Latency|99%|Non-2xx|Socket errors" || true
echo "== POST /users, 64 connections, ${secs}s"
wrk -t2 -c64 -d"${secs}s" --latency -s examples/users_api/post_user.lua "http://$addr" | grep -E "Requests/sec|Latency|99%|Non-2xx|Socket errors" || true
kill -TERM $pid
wait $pid && echo "server shut down cleanly (exit 0)"
grep -c '"request"\|request' "$dir/server.log" >/dev/null && tail -n 2 "$dir/server.log"

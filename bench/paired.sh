#!/usr/bin/env bash
# Paired A/B of two running servers: loads both at once, each with its own
# wrk, and prints req/s and CPU per request (user+system of the server's
# process) for each. Other load on the machine then hits both alike, which
# is what makes a difference of a few percent visible on a shared VM where
# one server measured alone swings by 20%. Run it a few times, swapping A
# and B, and compare CPU per request.
#
#   bench/paired.sh URL_A PID_A URL_B PID_B [SECONDS]
#
# CONNS (default 32) sets each wrk's connections.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,11p' "$0"; exit 2; }
ua=$1 pa=$2 ub=$3 pb=$4 secs=${5:-5}
ticks() { # user+system clock ticks of every thread of a process
  local s=0 t f
  for t in /proc/"$1"/task/*/stat; do read -r -a f < "$t"; s=$((s + f[13] + f[14])); done
  echo "$s"
}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
a0=$(ticks "$pa"); b0=$(ticks "$pb")
wrk -t1 -c"${CONNS:-32}" -d"${secs}s" "$ua" > "$dir/a" & wa=$!
wrk -t1 -c"${CONNS:-32}" -d"${secs}s" "$ub" > "$dir/b" & wb=$!
wait "$wa" "$wb"
a1=$(ticks "$pa"); b1=$(ticks "$pb")
hz=$(getconf CLK_TCK)
report() { # name, wrk output, ticks used
  awk -v name="$1" -v t="$3" -v hz="$hz" '/requests in/ {n=$1} /Requests\/sec/ {r=$2}
    END {printf "%s req/s %.0f  CPU/request %.2f us\n", name, r, t / hz * 1e6 / n}' "$2"
}
report A "$dir/a" $((a1 - a0))
report B "$dir/b" $((b1 - b0))

#!/usr/bin/env bash
# Compare ratelimit.Limiter with nginx's limit_req on loopback.
#
#   bench/ratelimit/run.sh            # defaults: 3 runs of 3s each, 16 connections
#   RUNS=5 DURATION=5s CONNS=32 bench/ratelimit/run.sh
#
# Two questions:
#  1. Throughput with the limiter on, at a rate that never limits: requests/s
#     of each server without a limit and with one, and the ratios.
#  2. Correctness at a rate that does limit: one client sends as fast as it
#     can for CHECK seconds against rate 100/s with nginx `burst=20 nodelay`
#     and gatehouse {rate: 100/s, burst: 21} (the same bucket): the number of
#     200s should be burst + rate*seconds = 21 + 100*CHECK on both.
#
# gatehouse's front is not wired here yet: the Go side is
# bench/ratelimit/server, a net/http server with Limiter.Wrap around an
# "ok" handler (client IP from RemoteAddr). nginx serves a 2-byte file "ok"
# (not `return 200`: return runs in the rewrite phase, before limit_req
# ever looks at the request).
# Everything runs on 127.0.0.1 and is stopped on exit. Needs nginx (light
# is enough), wrk and go.
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-16}
CHECK=${CHECK:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

for c in nginx wrk go; do
	command -v "$c" >/dev/null || { echo "missing $c (apt-get install -y nginx-light wrk)"; exit 1; }
done

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

waitport() {
	for _ in $(seq 100); do
		if (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listens on $1"; exit 1
}

(cd "$ROOT" && go build -o "$WORK/server" ./bench/ratelimit/server)

# nginx: one server block per configuration, 2 workers (the Go server uses
# both cores too).
P_NGX_OFF=$(freeport); P_NGX_HI=$(freeport); P_NGX_LIM=$(freeport)
mkdir -p "$WORK/nginx/logs" "$WORK/www"
printf ok >"$WORK/www/ok"
chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK/www/ok" # nginx workers run as www-data
cat >"$WORK/nginx/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	fastcgi_temp_path $WORK/nginx/fastcgi;
	uwsgi_temp_path $WORK/nginx/uwsgi;
	scgi_temp_path $WORK/nginx/scgi;
	limit_req_zone \$binary_remote_addr zone=hi:10m rate=100000000r/s;
	limit_req_zone \$binary_remote_addr zone=lim:10m rate=100r/s;
	limit_req_status 429;
	default_type text/plain;
	root $WORK/www;
	server { listen 127.0.0.1:$P_NGX_OFF; }
	server { listen 127.0.0.1:$P_NGX_HI;  limit_req zone=hi burst=1000000 nodelay; }
	server { listen 127.0.0.1:$P_NGX_LIM; limit_req zone=lim burst=20 nodelay; }
}
NGX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)

P_GO_OFF=$(freeport); P_GO_HI=$(freeport); P_GO_HN=$(freeport); P_GO_LIM=$(freeport)
"$WORK/server" -listen 127.0.0.1:$P_GO_OFF &
PIDS+=($!)
"$WORK/server" -listen 127.0.0.1:$P_GO_HI -rate 1000000000 -burst 1000000 &
PIDS+=($!)
"$WORK/server" -listen 127.0.0.1:$P_GO_HN -rate 1000000000 -burst 1000000 -headers never &
PIDS+=($!)
"$WORK/server" -listen 127.0.0.1:$P_GO_LIM -rate 100 -burst 21 &
PIDS+=($!)
for p in $P_NGX_OFF $P_NGX_HI $P_NGX_LIM $P_GO_OFF $P_GO_HI $P_GO_HN $P_GO_LIM; do
	waitport "$p"
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/ok")
	[ "$code" = 200 ] || { echo "port $p answers $code, want 200"; exit 1; }
done

rps() { wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$1/ok" | awk '/^Requests\/sec/ {print $2}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews absolute numbers; compare ratios)"
declare -A R
for name in ngx_off ngx_hi go_off go_hi go_hn; do R[$name]=""; done
echo "throughput: $RUNS runs of $DURATION, $CONNS connections, wrk -t1 (runs interleaved)"
for i in $(seq "$RUNS"); do
	R[ngx_off]+="$(rps $P_NGX_OFF)"$'\n'
	R[ngx_hi]+="$(rps $P_NGX_HI)"$'\n'
	R[go_off]+="$(rps $P_GO_OFF)"$'\n'
	R[go_hi]+="$(rps $P_GO_HI)"$'\n'
	R[go_hn]+="$(rps $P_GO_HN)"$'\n'
done
med() { printf '%s' "${R[$1]}" | grep . | median; }
NO=$(med ngx_off); NH=$(med ngx_hi); GO=$(med go_off); GH=$(med go_hi); GN=$(med go_hn)
printf '\n%-34s %12s %12s %10s\n' "median requests/s" "no limit" "limit on" "on/off"
printf '%-34s %12.0f %12.0f %10.3f\n' "nginx limit_req (never limits)" "$NO" "$NH" "$(echo "$NH / $NO" | bc -l)"
printf '%-34s %12.0f %12.0f %10.3f\n' "ratelimit.Wrap, headers: never" "$GO" "$GN" "$(echo "$GN / $GO" | bc -l)"
printf '%-34s %12.0f %12.0f %10.3f\n' "ratelimit.Wrap, RateLimit headers" "$GO" "$GH" "$(echo "$GH / $GO" | bc -l)"
printf '%-34s %12.3f %12.3f\n' "ratelimit (no headers) / nginx" "$(echo "$GO / $NO" | bc -l)" "$(echo "$GN / $NH" | bc -l)"
echo "(nginx sends no RateLimit headers; the headers row also pays ~70 more bytes a response)"

# Correctness: 200s out of everything one client sent in CHECK seconds.
count() {
	local out total non2xx
	out=$(wrk -t1 -c4 -d"${CHECK}s" "http://127.0.0.1:$1/ok")
	total=$(echo "$out" | awk '/requests in/ {print $1}')
	non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
	echo "$total ${non2xx:-0}"
}
sleep 1 # let the limited buckets refill
read -r NT NN < <(count $P_NGX_LIM)
read -r GT GN < <(count $P_GO_LIM)
WANT=$((21 + 100 * CHECK))
printf '\ncorrectness: rate 100/s, burst 21 (nginx burst=20 nodelay), %ss from one client\n' "$CHECK"
printf '%-34s %10s %10s %10s %10s\n' "" "sent" "200" "429" "200/want"
printf '%-34s %10d %10d %10d %10.3f\n' "nginx limit_req" "$NT" "$((NT - NN))" "$NN" "$(echo "($NT - $NN) / $WANT" | bc -l)"
printf '%-34s %10d %10d %10d %10.3f\n' "ratelimit.Wrap" "$GT" "$((GT - GN))" "$GN" "$(echo "($GT - $GN) / $WANT" | bc -l)"
echo "want 200s: $WANT (burst + rate x seconds; wrk's run is a little longer than ${CHECK}s)"

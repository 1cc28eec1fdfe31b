#!/usr/bin/env bash
# Static files: gatehouse's static.Server against nginx and Caddy, on the
# same files, on loopback, with wrk. Prints medians and ratios.
#
#   bench/static/run.sh            # DURATION=5 RUNS=3 CONNS=32 THREADS=2
#
# What is measured (issue 4):
#   small  - requests/s for a 2 KB CSS file (identity)
#   br     - requests/s for jquery.js with Accept-Encoding: br (a .br sibling
#            made by `CompressTree`, served by nginx's brotli_static and Caddy's
#            precompressed; gatehouse would also compress it once by itself)
#   big    - MB/s for a 10 MB file (sendfile)
#   memory - RSS of each server after requests for 10,000 distinct 2 KB files
#
# gatehouse is the real binary (`gatehouse run`, built from cmd/gatehouse)
# with a static mount and the access log off (as nginx's here): its HTTP/1
# server, the guard and the front's middleware (request id, security
# headers) all in the path. go-floor is bench/static/server -baseline: the
# same bytes from a map on Go's net/http, the ceiling of a net/http server.
# nginx: Debian package, 2
# workers, sendfile, open_file_cache, gzip_static and the Debian brotli_static
# module, expires 1y + immutable. Caddy: Debian package, file_server with
# precompressed br zstd gzip. Everything shares the machine with wrk, so the
# ratios mean more than the absolute numbers.
set -euo pipefail

DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
MANY_DURATION=${MANY_DURATION:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

for bin in nginx wrk curl go; do
	command -v $bin >/dev/null || { echo "missing $bin (apt-get install -y nginx wrk curl)"; exit 1; }
done
HAVE_CADDY=1
command -v caddy >/dev/null || { HAVE_CADDY=0; echo "caddy not installed: skipping it (apt-get install -y caddy)"; }
BROTLI_MOD=/usr/lib/nginx/modules/ngx_http_brotli_static_module.so
[ -f $BROTLI_MOD ] || { echo "missing $BROTLI_MOD (apt-get install -y libnginx-mod-http-brotli-static)"; exit 1; }

WORK=$(mktemp -d /tmp/gatehouse-bench-static.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- files -------------------------------------------------------------------
ROOT=$WORK/site        # served at /static/ -> $ROOT/static
S=$ROOT/static
mkdir -p "$S/many"
python3 - "$S" <<'PY'
import os, sys, random
s = sys.argv[1]
rule = ".c%d { margin: %dpx; color: #%06x; }\n"
random.seed(1)
css = "".join(rule % (i, i % 17, random.randrange(1 << 24)) for i in range(60))[:2048]
open(os.path.join(s, "small.css"), "w").write(css)
with open(os.path.join(s, "big.bin"), "wb") as f:
    f.write(os.urandom(10 * 1024 * 1024))
PY
JQ=/usr/lib/python3/dist-packages/django/contrib/admin/static/admin/js/vendor/jquery/jquery.js
if [ -f "$JQ" ]; then cp "$JQ" "$S/jquery.js"; else
	curl -fsSL https://code.jquery.com/jquery-3.7.1.js -o "$S/jquery.js"; fi
(cd "$REPO" && go build -o "$WORK/gh-static" ./bench/static/server && go build -o "$WORK/gatehouse" ./cmd/gatehouse)
# Siblings (.br/.zst/.gz) for jquery.js and small.css; the 'many' files,
# made afterwards, stay plain: the memory phase measures the cache.
"$WORK/gatehouse" compress "$S" >/dev/null
python3 - "$S" <<'PY'
import os, sys
s = sys.argv[1]
css = open(os.path.join(s, "small.css")).read()
for i in range(10000):
    open(os.path.join(s, "many", "%d.css" % i), "w").write(css)
PY
echo "files: small.css $(stat -c %s "$S/small.css") B, jquery.js $(stat -c %s "$S/jquery.js") B (.br $(stat -c %s "$S/jquery.js.br") B), big.bin $(stat -c %s "$S/big.bin") B, 10000 x many/N.css"

# --- servers -----------------------------------------------------------------
GH_PORT=$(freeport); NG_PORT=$(freeport); CD_PORT=$(freeport)
# An empty admin listen means the default 127.0.0.1:9180, which another
# gatehouse on the machine may hold: a free port of its own.
ADMIN_PORT=$(freeport)

cat > "$WORK/gatehouse.yaml" <<YAML
server:
  listen: "127.0.0.1:$GH_PORT"
static:
  - url: /static/
    root: "$S"
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
log:
  access: false
  level: warn
YAML
"$WORK/gatehouse" run -c "$WORK/gatehouse.yaml" &
PIDS+=($!); GH_PID=$!
# The net/http ceiling: same bytes and headers from a map, nothing else.
BL_PORT=$(freeport)
"$WORK/gh-static" -baseline -addr 127.0.0.1:$BL_PORT -root "$S" &
PIDS+=($!); BL_PID=$!

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
cat > "$WORK/nginx/nginx.conf" <<NGX
load_module $BROTLI_MOD;
daemon off;
master_process on;
worker_processes 2;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_valid 1s;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:$NG_PORT;
        root $ROOT;
        location /static/ {
            gzip_static on;
            brotli_static on;
            expires 1y;
            add_header Cache-Control immutable;
        }
    }
}
NGX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!); NG_PID=$!

if [ $HAVE_CADDY = 1 ]; then
	cat > "$WORK/Caddyfile" <<CDY
{
	admin off
	auto_https off
}
http://127.0.0.1:$CD_PORT {
	root * $ROOT
	file_server {
		precompressed br zstd gzip
	}
}
CDY
	HOME=$WORK XDG_DATA_HOME=$WORK XDG_CONFIG_HOME=$WORK caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
	PIDS+=($!); CD_PID=$!
fi

wait_up() {
	for _ in $(seq 100); do curl -fso /dev/null "http://127.0.0.1:$1/static/small.css" && return 0; sleep 0.1; done
	echo "server on port $1 did not come up"; cat "$WORK"/nginx/logs/error.log "$WORK"/caddy.log 2>/dev/null | tail -20; exit 1
}
wait_up $GH_PORT; wait_up $NG_PORT; wait_up $BL_PORT
SERVERS="gatehouse:$GH_PORT nginx:$NG_PORT"
[ $HAVE_CADDY = 1 ] && { wait_up $CD_PORT; SERVERS="$SERVERS caddy:$CD_PORT"; }
LOAD_SERVERS="$SERVERS go-floor:$BL_PORT"

# Check every server answers the br request with br, so we compare like
# with like.
for sp in $SERVERS; do
	name=${sp%%:*}; port=${sp##*:}
	ce=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: br' "http://127.0.0.1:$port/static/jquery.js" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
	echo "$name: jquery.js with Accept-Encoding: br -> Content-Encoding: ${ce:-identity}"
done

# --- load --------------------------------------------------------------------
declare -A RESULTS CPU PID_OF
PID_OF[gatehouse]=$GH_PID; PID_OF[nginx]=$NG_PID; PID_OF[go-floor]=$BL_PID
[ $HAVE_CADDY = 1 ] && PID_OF[caddy]=$CD_PID
HZ=$(getconf CLK_TCK)
cpu_ticks() { # pid -> user+system clock ticks of it and its children (nginx's workers)
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0)))
	done
	echo $total
}
# run_wrk prints the test's figure and the server's CPU time per request in
# microseconds. On a machine shared with other jobs the CPU time of the
# server is far steadier than requests/s, which move with whatever else runs.
run_wrk() { # server port test -> value cpu_us_per_request
	local port=$2 test=$3 out t0 t1 v n
	t0=$(cpu_ticks ${PID_OF[$1]})
	case $test in
	small) out=$(wrk -t$THREADS -c$CONNS -d${DURATION}s "http://127.0.0.1:$port/static/small.css") ;;
	br) out=$(wrk -t$THREADS -c$CONNS -d${DURATION}s -H 'Accept-Encoding: br' "http://127.0.0.1:$port/static/jquery.js") ;;
	big) out=$(wrk -t$THREADS -c4 -d${DURATION}s "http://127.0.0.1:$port/static/big.bin") ;;
	esac
	t1=$(cpu_ticks ${PID_OF[$1]})
	if echo "$out" | grep -q "Non-2xx"; then echo "$1 $test: non-2xx responses" >&2; fi
	if [ $test = big ]; then
		v=$(echo "$out" | awk '/Transfer\/sec/{v=$2; if (v ~ /GB/) {sub("GB","",v); v*=1024} else if (v ~ /MB/) {sub("MB","",v)} else if (v ~ /KB/) {sub("KB","",v); v/=1024}; print v}')
	else
		v=$(echo "$out" | awk '/Requests\/sec/{print $2}')
	fi
	n=$(echo "$out" | awk '/requests in/{print $1}')
	echo "$v $(awk -v t=$((t1 - t0)) -v hz=$HZ -v n=$n 'BEGIN{printf "%.1f", n ? t * 1e6 / hz / n : 0}')"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for test in small br big; do
	for sp in $LOAD_SERVERS; do run_wrk ${sp%%:*} ${sp##*:} $test >/dev/null; done # warm up
	for r in $(seq $RUNS); do
		for sp in $LOAD_SERVERS; do # interleaved, so drift hits all alike
			read -r v c < <(run_wrk ${sp%%:*} ${sp##*:} $test)
			RESULTS[${sp%%:*}:$test]="${RESULTS[${sp%%:*}:$test]:-} $v"
			CPU[${sp%%:*}:$test]="${CPU[${sp%%:*}:$test]:-} $c"
		done
	done
done

# Memory with 10,000 distinct files: one request each (wrk + Lua), then RSS
# of the whole server (nginx: master + workers; Caddy and gatehouse: one process).
cat > "$WORK/many.lua" <<'LUA'
local i = 0
request = function()
	i = i + 1
	return wrk.format("GET", "/static/many/" .. (i % 10000) .. ".css", {["Accept-Encoding"] = "gzip, br"})
end
LUA
rss_kb() { # pid -> total RSS of it and its children, KiB
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null || echo 0)))
	done
	echo $total
}
declare -A RSS_BEFORE RSS_AFTER REQS
for sp in $SERVERS; do
	name=${sp%%:*}; port=${sp##*:}
	pid_var=$( [ $name = gatehouse ] && echo $GH_PID || { [ $name = nginx ] && echo $NG_PID || echo $CD_PID; } )
	RSS_BEFORE[$name]=$(rss_kb $pid_var)
	# Long enough for every file to be asked for at least once even while
	# gatehouse compresses each on first use.
	REQS[$name]=$(wrk -t1 -c8 -d${MANY_DURATION}s -s "$WORK/many.lua" "http://127.0.0.1:$port" | awk '/requests in/{print $1}')
	RSS_AFTER[$name]=$(rss_kb $pid_var)
done

# --- table -------------------------------------------------------------------
# print_medians ARRAY FORMAT: a row per server with the median of each
# test's runs, which it keeps as ARRAY[server:test:med] for the ratios.
print_medians() {
	local -n arr=$1
	local name test m sp
	for sp in $LOAD_SERVERS; do
		name=${sp%%:*}
		printf "%-10s" "$name"
		for test in small br big; do
			m=$(echo "${arr[$name:$test]}" | median)
			arr[$name:$test:med]=$m
			printf " $2" "$m"
		done
		echo
	done
}
echo
printf "%-10s %14s %14s %14s\n" "" "small req/s" "jquery br req/s" "10MB MB/s"
print_medians RESULTS %14.0f
for base in nginx caddy go-floor; do
	[ -n "${RESULTS[$base:small:med]:-}" ] || continue
	printf "%-10s" "gh/$base"
	for test in small br big; do
		awk -v a="${RESULTS[gatehouse:$test:med]}" -v b="${RESULTS[$base:$test:med]}" 'BEGIN{printf " %13.2fx", a/b}'
	done
	echo
done
echo
echo "server CPU (user+system) per request, us, median (big: per 10 MB response):"
printf "%-10s %14s %14s %14s\n" "" "small" "jquery br" "10MB"
print_medians CPU %14.1f
printf "%-10s" "nginx/gh"
for test in small br big; do
	awk -v a="${CPU[nginx:$test:med]}" -v b="${CPU[gatehouse:$test:med]}" 'BEGIN{printf " %13.2fx", a/b}'
done
echo "   (CPU per request of nginx over gatehouse's: above 1.0x gatehouse uses less)"
echo
echo "raw runs (each ${DURATION}s, -c$CONNS -t$THREADS; big uses -c4):"
for k in $(echo "${!RESULTS[@]}" | tr ' ' '\n' | grep -v ':med$' | sort); do echo "  $k:${RESULTS[$k]}   cpu us/req:${CPU[$k]}"; done
echo
echo "RSS after requests cycling over 10,000 distinct files (before -> after, MiB):"
for sp in $SERVERS; do
	name=${sp%%:*}
	awk -v n=$name -v a=${RSS_BEFORE[$name]} -v b=${RSS_AFTER[$name]} -v r=${REQS[$name]} 'BEGIN{printf "  %-10s %6.1f -> %6.1f   (%d requests)\n", n, a/1024, b/1024, r}'
done

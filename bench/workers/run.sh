#!/usr/bin/env bash
# bench/workers/run.sh: the Django example under nginx + gunicorn (Debian
# packages, 4 sync workers) and under gatehouse's worker pool (4 workers),
# in one run, on loopback, with wrk. Prints medians and ratios.
#
#   bench/workers/run.sh                 # defaults: 3 rounds of 8s per case
#   ROUNDS=5 DUR=10s bench/workers/run.sh
#
# Needs: nginx-light (or nginx), gunicorn, python3-django, wrk, go.
# gatehouse side: `gatehouse run` (built from cmd/gatehouse, or GATEHOUSE_BIN)
# with a generated config; POOLDRIVER=1 uses bench/workers/pooldriver
# instead (workers.Pool behind httputil.ReverseProxy, no front middleware).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DUR=${DUR:-8s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
SLEEP_CONNS=${SLEEP_CONNS:-64}
WORKERS=4
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
NGINX_PORT=${NGINX_PORT:-$(free_port)}
GH_PORT=${GH_PORT:-$(free_port)}

for bin in nginx gunicorn wrk go /usr/bin/python3; do
	command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 1; }
done
/usr/bin/python3 -c 'import django' || { echo "missing: python3-django" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	kill -QUIT "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true
	sleep 1
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

export EXAMPLE_DATA_DIR=$tmp/data DJANGO_SETTINGS_MODULE=mysite.settings
# Create the database and static files once, before either stack boots.
(cd examples/django && /usr/bin/python3 -c 'import mysite.wsgi')

# nginx + gunicorn, the usual production pair.
(cd examples/django && exec gunicorn --workers $WORKERS --worker-class sync \
	--bind "unix:$tmp/gunicorn.sock" --log-level warning mysite.wsgi:application) &
pids+=($!)
gunicorn_pid=$!
disown $gunicorn_pid
cat >"$tmp/nginx.conf" <<NGINX
daemon off;
user root;
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx-body;
	proxy_temp_path $tmp/nginx-proxy;
	fastcgi_temp_path $tmp/nginx-fastcgi;
	uwsgi_temp_path $tmp/nginx-uwsgi;
	scgi_temp_path $tmp/nginx-scgi;
	upstream app { server unix:$tmp/gunicorn.sock; }
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / {
			proxy_pass http://app;
			proxy_set_header Host \$http_host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
nginx_pid=$!
disown $nginx_pid

# gatehouse: the real binary when it builds (or GATEHOUSE_BIN), else the
# pool driver (POOLDRIVER=1 forces it).
if [ -z "${GATEHOUSE_BIN:-}" ] && [ -z "${POOLDRIVER:-}" ] && go build -o "$tmp/gatehouse" ./cmd/gatehouse 2>/dev/null; then
	GATEHOUSE_BIN=$tmp/gatehouse
fi
if [ -n "${GATEHOUSE_BIN:-}" ]; then
	echo "gatehouse side: $GATEHOUSE_BIN run" >&2
	cat >"$tmp/gatehouse.yaml" <<YAML
server:
  listen: "127.0.0.1:$GH_PORT"
log:
  access: false
  level: warn
app:
  wsgi: mysite.wsgi:application
  python: /usr/bin/python3
  chdir: $ROOT/examples/django
  workers: $WORKERS
  threads: 1
YAML
	"$GATEHOUSE_BIN" run -c "$tmp/gatehouse.yaml" &
else
	echo "gatehouse side: bench/workers/pooldriver" >&2
	go build -o "$tmp/pooldriver" ./bench/workers/pooldriver
	"$tmp/pooldriver" -listen "127.0.0.1:$GH_PORT" -chdir examples/django -workers $WORKERS &
fi
pids+=($!)
gh_pid=$!
disown $gh_pid

wait_up() {
	for _ in $(seq 1 200); do
		curl -fsS -o /dev/null "http://127.0.0.1:$1/json" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "stack on port $1 never came up" >&2
	exit 1
}
wait_up $NGINX_PORT
wait_up $GH_PORT

# tree_mem PID: "rss_kib pss_kib" summed over the process and its descendants.
tree_mem() {
	local all=$1 frontier=$1 next
	while [ -n "$frontier" ]; do
		next=$(for p in $frontier; do ps -o pid= --ppid "$p"; done | tr -s ' \n' ' ')
		all="$all $next"
		frontier=$(echo $next)
	done
	local rss=0 pss=0
	for p in $all; do
		[ -r /proc/$p/smaps_rollup ] || continue
		read -r r s < <(awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{print r, s}' /proc/$p/smaps_rollup)
		rss=$((rss + r)); pss=$((pss + s))
	done
	echo "$rss $pss"
}

results=$tmp/results.txt
: >"$results"
run() { # name port path conns
	local out
	out=$(wrk -t2 -c"$4" -d"$DUR" --latency "http://127.0.0.1:$2$3")
	local rps p99 errs
	rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
	p99=$(awk '$1=="99%"{print $2}' <<<"$out")
	errs=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(/,/,""); n+=$4+$6+$8+$10} END{print n+0}' <<<"$out")
	echo "$1 $3 $rps $p99 $errs" >>"$results"
	echo "  $1 $3 c=$4: $rps req/s, p99 $p99, errors $errs" >&2
}

echo "warming up" >&2
wrk -t2 -c16 -d2s "http://127.0.0.1:$NGINX_PORT/json" >/dev/null
wrk -t2 -c16 -d2s "http://127.0.0.1:$GH_PORT/json" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	run nginx+gunicorn $NGINX_PORT /json "$CONNS"
	run gatehouse $GH_PORT /json "$CONNS"
done
mem_ng=$(( $(tree_mem $nginx_pid | cut -d' ' -f1) )) ; mem_ng_p=$(tree_mem $nginx_pid | cut -d' ' -f2)
mem_gu=$(tree_mem $gunicorn_pid | cut -d' ' -f1) ; mem_gu_p=$(tree_mem $gunicorn_pid | cut -d' ' -f2)
mem_gh=$(tree_mem $gh_pid | cut -d' ' -f1) ; mem_gh_p=$(tree_mem $gh_pid | cut -d' ' -f2)
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS (sleep 50ms)" >&2
	run nginx+gunicorn $NGINX_PORT /sleep "$SLEEP_CONNS"
	run gatehouse $GH_PORT /sleep "$SLEEP_CONNS"
done

/usr/bin/python3 - "$results" "$mem_ng" "$mem_ng_p" "$mem_gu" "$mem_gu_p" "$mem_gh" "$mem_gh_p" "$WORKERS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ng_rss, ng_pss, gu_rss, gu_pss, gh_rss, gh_pss, workers = map(int, sys.argv[2:9])
def ms(s):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if s.endswith(unit) and s[: -len(unit)].replace(".", "", 1).isdigit():
            return float(s[: -len(unit)]) * f
    return float("nan")
def med(name, path, col):
    vals = [float(r[2]) if col == "rps" else ms(r[3]) if col == "p99" else float(r[4]) for r in rows if r[0] == name and r[1] == path]
    return statistics.median(vals) if col != "err" else sum(vals)
print()
print("%-22s %16s %14s %10s %8s" % ("case", "nginx+gunicorn", "gatehouse", "ratio", "target"))
for path, label in (("/json", "JSON view"), ("/sleep", "50 ms view")):
    a, b = med("nginx+gunicorn", path, "rps"), med("gatehouse", path, "rps")
    tgt = ">=1.20x" if path == "/json" else ""
    print("%-22s %12.0f r/s %10.0f r/s %9.2fx %8s" % (label + " req/s", a, b, b / a, tgt))
    a, b = med("nginx+gunicorn", path, "p99"), med("gatehouse", path, "p99")
    print("%-22s %13.1f ms %11.1f ms %9.2fx %8s" % (label + " p99", a, b, b / a, "<=1.00x"))
    a, b = med("nginx+gunicorn", path, "err"), med("gatehouse", path, "err")
    print("%-22s %16d %14d" % (label + " errors", a, b))
limit = workers / 0.05
b = med("gatehouse", "/sleep", "rps")
print("%-22s %16s %10.0f r/s %9.0f%% %8s" % ("50 ms view vs limit", "", b, 100 * b / limit, ">=95%"))
a = med("nginx+gunicorn", "/sleep", "rps")
print("%-22s %12.0f r/s %16s %9.0f%%" % ("  (gunicorn vs limit)", a, "", 100 * a / limit))
print("%-22s %13.1f MiB %10.1f MiB %9.2fx %8s" % ("memory RSS (sum)", (ng_rss + gu_rss) / 1024, gh_rss / 1024, gh_rss / (ng_rss + gu_rss), "<=1.00x"))
print("%-22s %13.1f MiB %10.1f MiB %9.2fx %8s" % ("memory PSS (sum)", (ng_pss + gu_pss) / 1024, gh_pss / 1024, gh_pss / (ng_pss + gu_pss), "<=1.00x"))
print("  (nginx %.1f MiB RSS, gunicorn %.1f MiB RSS; medians of %d rounds)" % (ng_rss / 1024, gu_rss / 1024, len(rows) // 4))
PY

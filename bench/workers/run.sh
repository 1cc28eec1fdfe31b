#!/usr/bin/env bash
# bench/workers/run.sh: the Django example under the stacks a Django team
# runs today and under gatehouse's worker pool, in one run, on loopback, with
# wrk. Prints medians and ratios. Every stack has 4 worker processes:
#   nginx + gunicorn   (proxy_pass to gunicorn's Unix socket, 4 sync workers)
#   caddy + gunicorn   (reverse_proxy to the same gunicorn)
#   uwsgi              (its own HTTP/1.1 socket, 4 processes, master)
#   gatehouse          (app.wsgi, 4 workers, threads 1)
#
#   bench/workers/run.sh                 # defaults: 3 rounds of 8s per case
#   ROUNDS=5 DUR=10s bench/workers/run.sh
#
# Needs: nginx-light (or nginx), caddy, gunicorn, uwsgi-core,
# uwsgi-plugin-python3, python3-django, wrk, go.
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
CADDY_PORT=${CADDY_PORT:-$(free_port)}
UWSGI_PORT=${UWSGI_PORT:-$(free_port)}

for bin in nginx caddy gunicorn uwsgi wrk go /usr/bin/python3; do
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

# caddy + gunicorn: Caddy's reverse_proxy to the same gunicorn (the rounds
# never overlap, so sharing it is fair; its memory is counted once per stack).
cat >"$tmp/Caddyfile" <<CADDY
{
	admin off
	auto_https off
}
http://127.0.0.1:$CADDY_PORT {
	reverse_proxy unix/$tmp/gunicorn.sock
}
CADDY
XDG_DATA_HOME=$tmp XDG_CONFIG_HOME=$tmp caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
pids+=($!)
caddy_pid=$!
disown $caddy_pid

# uwsgi: 4 processes forked from a master that imported the app, serving
# HTTP/1.1 with keep-alive on its own socket (no router process between).
(cd examples/django && exec uwsgi --plugin python3 --master --processes $WORKERS \
	--http11-socket "127.0.0.1:$UWSGI_PORT" --module mysite.wsgi:application \
	--die-on-term --disable-logging --logto "$tmp/uwsgi.log") &
pids+=($!)
uwsgi_pid=$!
disown $uwsgi_pid

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
wait_up $CADDY_PORT
wait_up $UWSGI_PORT
wait_up $GH_PORT

# tree_pids PID: the process and its descendants.
tree_pids() {
	local all=$1 frontier=$1 next
	while [ -n "$frontier" ]; do
		next=$(for p in $frontier; do ps -o pid= --ppid "$p" || true; done | tr -s ' \n' ' ')
		all="$all $next"
		frontier=$(echo $next)
	done
	echo $all
}

# tree_mem PID: "rss_kib pss_kib" summed over the process and its descendants.
tree_mem() {
	local rss=0 pss=0 p r s
	for p in $(tree_pids "$1"); do
		[ -r /proc/$p/smaps_rollup ] || continue
		read -r r s < <(awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{print r, s}' /proc/$p/smaps_rollup)
		rss=$((rss + r)); pss=$((pss + s))
	done
	echo "$rss $pss"
}

# cpu_ticks PID...: user+system clock ticks used so far, summed.
cpu_ticks() {
	local t=0 u s
	for p in "$@"; do
		[ -r /proc/$p/stat ] || continue
		read -r u s < <(awk '{print $14, $15}' /proc/$p/stat) || continue
		t=$((t + u + s))
	done
	echo $t
}
# CPU is what the stacks compete for on a small machine, and CPU time per
# request moves much less than req/s when other jobs load the machine: each
# round also records the microseconds of CPU (user+system) per request of
# the front (nginx, Caddy, gatehouse's own process) and of the Python
# processes (gunicorn's master and workers, uWSGI's, gatehouse's workers).
TICK_US=$((1000000 / $(getconf CLK_TCK)))
results=$tmp/results.txt
: >"$results"
run() { # name port path conns
	local out front="" workers
	case $1 in
	nginx+gunicorn) front=$(tree_pids $nginx_pid) workers=$(tree_pids $gunicorn_pid) ;;
	caddy+gunicorn) front=$(tree_pids $caddy_pid) workers=$(tree_pids $gunicorn_pid) ;;
	uwsgi) workers=$(tree_pids $uwsgi_pid) ;;
	gatehouse) front=$gh_pid workers=$(tree_pids $gh_pid | cut -s -d' ' -f2-) ;;
	esac
	local f0 w0 f1 w1
	f0=$(cpu_ticks $front) w0=$(cpu_ticks $workers)
	out=$(wrk -t2 -c"$4" -d"$DUR" --latency "http://127.0.0.1:$2$3")
	f1=$(cpu_ticks $front) w1=$(cpu_ticks $workers)
	local rps p99 errs n fus wus
	rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
	p99=$(awk '$1=="99%"{print $2}' <<<"$out")
	errs=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(/,/,""); n+=$4+$6+$8+$10} END{print n+0}' <<<"$out")
	n=$(awk '/requests in/{print $1}' <<<"$out")
	[ "${n:-0}" -gt 0 ] || n=1
	fus=$(((f1 - f0) * TICK_US / n)) wus=$(((w1 - w0) * TICK_US / n))
	echo "$1 $3 $rps $p99 $errs $fus $wus" >>"$results"
	echo "  $1 $3 c=$4: $rps req/s, p99 $p99, errors $errs, CPU per request: front $fus us, Python $wus us" >&2
}

stacks=("nginx+gunicorn:$NGINX_PORT" "caddy+gunicorn:$CADDY_PORT" "uwsgi:$UWSGI_PORT" "gatehouse:$GH_PORT")
echo "warming up" >&2
for s in "${stacks[@]}"; do wrk -t2 -c16 -d2s "http://127.0.0.1:${s#*:}/json" >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	for s in "${stacks[@]}"; do run "${s%%:*}" "${s#*:}" /json "$CONNS"; done
done
# Memory of each whole stack after the JSON rounds, "rss pss" in KiB.
mem=$tmp/mem.txt
read -r ng_r ng_p < <(tree_mem $nginx_pid)
read -r ca_r ca_p < <(tree_mem $caddy_pid)
read -r gu_r gu_p < <(tree_mem $gunicorn_pid)
read -r uw_r uw_p < <(tree_mem $uwsgi_pid)
read -r gh_r gh_p < <(tree_mem $gh_pid)
{
	echo "nginx+gunicorn $((ng_r + gu_r)) $((ng_p + gu_p)) nginx $ng_r"
	echo "caddy+gunicorn $((ca_r + gu_r)) $((ca_p + gu_p)) caddy $ca_r"
	echo "uwsgi $uw_r $uw_p - 0"
	echo "gatehouse $gh_r $gh_p - 0"
	echo "gunicorn $gu_r $gu_p - 0"
} >"$mem"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS (sleep 50ms)" >&2
	for s in "${stacks[@]}"; do run "${s%%:*}" "${s#*:}" /sleep "$SLEEP_CONNS"; done
done

/usr/bin/python3 - "$results" "$mem" "$WORKERS" "$ROUNDS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
mem = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2])}
workers, rounds = int(sys.argv[3]), int(sys.argv[4])
stacks = ["nginx+gunicorn", "caddy+gunicorn", "uwsgi", "gatehouse"]
others = stacks[:-1]

def ms(s):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if s.endswith(unit) and s[: -len(unit)].replace(".", "", 1).isdigit():
            return float(s[: -len(unit)]) * f
    return float("nan")

COLS = {"rps": 2, "err": 4, "front": 5, "python": 6}
def med(name, path, col):
    vals = [ms(r[3]) if col == "p99" else float(r[COLS[col]]) for r in rows if r[0] == name and r[1] == path]
    return statistics.median(vals) if col != "err" else sum(vals)

def line(label, cells, ratios="", target=""):
    print("%-20s" % label + "".join("%16s" % c for c in cells) + "  %-30s %s" % (ratios, target))

print()
line("case", stacks, "gatehouse / " + ", ".join(o.split("+")[0] for o in others), "target (vs nginx+gunicorn)")
for path, label in (("/json", "JSON view"), ("/sleep", "50 ms view")):
    v = [med(s, path, "rps") for s in stacks]
    line(label + " req/s", ["%.0f r/s" % x for x in v], "  ".join("%.2fx" % (v[-1] / x) for x in v[:-1]), ">=1.20x" if path == "/json" else "")
    v = [med(s, path, "p99") for s in stacks]
    line(label + " p99", ["%.1f ms" % x for x in v], "  ".join("%.2fx" % (v[-1] / x) for x in v[:-1]), "<=1.00x")
    v = [med(s, path, "err") for s in stacks]
    line(label + " errors", ["%d" % x for x in v])
    if path == "/json":
        f = [med(s, path, "front") for s in stacks]
        w = [med(s, path, "python") for s in stacks]
        line("  CPU/req front", ["%.0f us" % x for x in f])
        line("  CPU/req Python", ["%.0f us" % x for x in w])
        t = [a + b for a, b in zip(f, w)]
        line("  CPU/req total", ["%.0f us" % x for x in t], "  ".join("%.2fx" % (t[-1] / x) for x in t[:-1]), "(lower is better)")
limit = workers / 0.05
v = [med(s, "/sleep", "rps") for s in stacks]
line("50 ms view vs limit", ["%.0f%%" % (100 * x / limit) for x in v], "(limit %d workers / 50 ms = %.0f r/s)" % (workers, limit), ">=95%")
for col, name in ((0, "RSS"), (1, "PSS")):
    v = [int(mem[s][col]) / 1024 for s in stacks]
    line("memory %s (sum)" % name, ["%.1f MiB" % x for x in v], "  ".join("%.2fx" % (v[-1] / x) for x in v[:-1]), "<=1.00x")
print("  (whole stacks after the JSON rounds; gunicorn alone %.1f MiB RSS; medians of %d rounds, %s each)" % (int(mem["gunicorn"][0]) / 1024, rounds, "wrk -t2"))
PY

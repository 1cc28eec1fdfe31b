#!/bin/sh
# Compares httputil.ReverseProxy over h1.Transport and over
# net/http.Transport (and nginx proxy_pass with upstream keepalive, when
# nginx is installed) in front of the same tiny Go backend, on loopback:
# wrk -t2 -c64 -d5s, RUNS runs each, interleaved; medians of req/s and of
# the proxy's CPU time per request (the steadier figure on a busy machine).
#
#   sh internal/h1/testdata/wrkbench/run.sh        (from the module root)
set -eu
RUNS=${RUNS:-3}
DUR=${DUR:-5s}
dir=$(mktemp -d /tmp/h1-wrkbench.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

go build -o "$dir/wrkbench" ./internal/h1/testdata/wrkbench

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() {
	python3 -c 'import socket, sys, time
for _ in range(200):
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.1).close(); sys.exit(0)
    except OSError: time.sleep(0.05)
sys.exit("port %s not up" % sys.argv[1])' "$1"
}

bport=$(freeport)
"$dir/wrkbench" -mode backend -addr 127.0.0.1:$bport 2>/dev/null & pids="$pids $!"
waitport $bport
hport=$(freeport)
"$dir/wrkbench" -mode h1 -addr 127.0.0.1:$hport -backend 127.0.0.1:$bport 2>/dev/null & pids="$pids $!"; hpid=$!
sport=$(freeport)
"$dir/wrkbench" -mode std -addr 127.0.0.1:$sport -backend 127.0.0.1:$bport 2>/dev/null & pids="$pids $!"; spid=$!
waitport $hport; waitport $sport
targets="h1:$hport:$hpid net-http:$sport:$spid"

if command -v nginx >/dev/null; then
	nport=$(freeport)
	mkdir -p "$dir/nginx"
	cat >"$dir/nginx.conf" <<CONF
worker_processes 2;
error_log $dir/nginx/error.log;
pid $dir/nginx/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx;
	fastcgi_temp_path $dir/nginx; uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
	upstream app { server 127.0.0.1:$bport; keepalive 64; }
	server {
		listen 127.0.0.1:$nport;
		location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
CONF
	nginx -c "$dir/nginx.conf" -g 'daemon off;' & pids="$pids $!"; npid=$!
	waitport $nport
	targets="$targets nginx:$nport:$npid"
fi

# cpu PID: clock ticks used by PID and its children processes (nginx
# workers), so that a noisy machine can still compare CPU per request.
cpu() {
	t=0
	for p in $1 $(ps -o pid= --ppid "$1"); do
		t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
	done
	echo $t
}
port() { echo "$1" | cut -d: -f2; }
pidof_t() { echo "$1" | cut -d: -f3; }
hz=$(getconf CLK_TCK)

for t in $targets; do # warm up
	wrk -t2 -c64 -d1s "http://127.0.0.1:$(port $t)/" >/dev/null
done
for i in $(seq "$RUNS"); do
	for t in $targets; do
		before=$(cpu "$(pidof_t $t)")
		out=$(wrk -t2 -c64 -d"$DUR" "http://127.0.0.1:$(port $t)/")
		after=$(cpu "$(pidof_t $t)")
		rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
		n=$(echo "$out" | awk '/requests in/ {print $1}')
		us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
		echo "${t%%:*} $rps $us" >>"$dir/results"
		echo "run $i ${t%%:*}: $rps req/s, $us us CPU/request in the proxy" >&2
	done
done

echo
printf '%-10s %12s %14s   %s\n' proxy "median req/s" "median CPU us" "runs (req/s)"
awk '
function median(list,   c, a, x, y, t) {
	c = split(substr(list, 2), a, " ")
	for (x = 1; x <= c; x++) for (y = x + 1; y <= c; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
	return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
}
{ v[$1] = v[$1] " " $2; u[$1] = u[$1] " " $3; if (!($1 in order)) { order[$1] = ++k; names[k] = $1 } }
END {
	for (i = 1; i <= k; i++) {
		name = names[i]; med[name] = median(v[name]); cpu[name] = median(u[name])
		printf "%-10s %12.0f %14.1f  %s\n", name, med[name], cpu[name], v[name]
	}
	if (med["net-http"] > 0) printf "\nh1 / net-http: %.2fx req/s, %.2fx CPU per request\n", med["h1"] / med["net-http"], cpu["h1"] / cpu["net-http"]
	if (med["nginx"] > 0) printf "h1 / nginx:    %.2fx req/s, %.2fx CPU per request\n", med["h1"] / med["nginx"], cpu["h1"] / cpu["nginx"]
}' "$dir/results"

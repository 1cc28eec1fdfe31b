#!/bin/sh
# Compares httputil.ReverseProxy over h1.Transport and over
# net/http.Transport (and nginx proxy_pass with upstream keepalive, when
# nginx is installed) in front of the same tiny Go backend, on loopback:
# wrk -t2 -c64 -d5s, RUNS runs each, interleaved, medians.
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
"$dir/wrkbench" -mode h1 -addr 127.0.0.1:$hport -backend 127.0.0.1:$bport 2>/dev/null & pids="$pids $!"
sport=$(freeport)
"$dir/wrkbench" -mode std -addr 127.0.0.1:$sport -backend 127.0.0.1:$bport 2>/dev/null & pids="$pids $!"
waitport $hport; waitport $sport
targets="h1:$hport net-http:$sport"

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
	nginx -c "$dir/nginx.conf" -g 'daemon off;' & pids="$pids $!"
	waitport $nport
	targets="$targets nginx:$nport"
fi

for t in $targets; do # warm up
	wrk -t2 -c64 -d1s "http://127.0.0.1:${t#*:}/" >/dev/null
done
for i in $(seq "$RUNS"); do
	for t in $targets; do
		rps=$(wrk -t2 -c64 -d"$DUR" "http://127.0.0.1:${t#*:}/" | awk '/^Requests\/sec/ {print $2}')
		echo "${t%%:*} $rps" >>"$dir/results"
		echo "run $i ${t%%:*}: $rps req/s" >&2
	done
done

echo
printf '%-10s %12s   %s\n' proxy "median req/s" "runs"
awk '
{ v[$1] = v[$1] " " $2; n[$1]++ ; if (!($1 in order)) { order[$1] = ++k; names[k] = $1 } }
END {
	for (i = 1; i <= k; i++) {
		name = names[i]; c = split(substr(v[name], 2), a, " ")
		for (x = 1; x <= c; x++) for (y = x + 1; y <= c; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
		med[name] = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
		printf "%-10s %12.0f  %s\n", name, med[name], v[name]
	}
	if ("net-http" in med && med["net-http"] > 0) printf "\nh1 / net-http = %.2f\n", med["h1"] / med["net-http"]
	if ("nginx" in med && med["nginx"] > 0) printf "h1 / nginx    = %.2f\n", med["h1"] / med["nginx"]
}' "$dir/results"

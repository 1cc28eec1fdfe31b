#!/usr/bin/env bash
# Runs every benchmark side by side with the incumbents and writes
# docs/benchmarks.md: one command, one run, one machine.
#
#   bench/run-all.sh              # installs what is missing (root or sudo), about 20 minutes
#   bench/run-all.sh --assemble   # only rebuild docs/benchmarks.md from bench/results/
#
# The pieces, each runnable alone:
#   go run ./bench/proxy        forwarding vs nginx proxy_pass; memory; latency plot
#   go run ./bench/tls          testssl.sh, h2spec, h2load vs nginx
#   bench/static/run.sh         static files vs nginx and Caddy
#   bench/ratelimit/run.sh      rate limiting vs nginx limit_req
#   bench/workers/run.sh        Django through gatehouse's workers vs nginx + gunicorn, Caddy + gunicorn, uWSGI
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
ensure_packages nginx-light libnginx-mod-http-brotli-static caddy gunicorn uwsgi-core uwsgi-plugin-python3 \
  python3-django wrk nghttp2-client testssl.sh gnuplot-nox curl redis-server

if [ "${1:-}" != "--assemble" ]; then
  mkdir -p bench/results docs
  go run ./bench/proxy -out bench/results/proxy.md -plot bench/results/proxy-latency.png >/dev/null
  go run ./bench/tls -out bench/results/tls.md >/dev/null
  bench/static/run.sh > bench/results/static.txt
  bench/ratelimit/run.sh > bench/results/ratelimit.txt
  bench/workers/run.sh > bench/results/workers.txt
  cp bench/results/proxy-latency.png docs/proxy-latency.png
fi

# --assemble: rebuild docs/benchmarks.md from bench/results/ without rerunning.
mkdir -p docs
cp bench/results/proxy-latency.png docs/proxy-latency.png
{
  echo "# gatehouse benchmarks"
  echo
  echo "Assembled by \`bench/run-all.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') from one run of each benchmark (each section gives its time),"
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB of memory, $(go version | cut -d' ' -f3),"
  echo "$(nginx -v 2>&1 | cut -d' ' -f3), $(caddy version 2>/dev/null | cut -d' ' -f1 | sed 's/^/caddy /'), gunicorn $(gunicorn --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1), uWSGI $(uwsgi --version 2>/dev/null)."
  echo "The load generator runs on the same machine, so ratios mean more than absolute numbers."
  echo "Each section says how to rerun it alone."
  echo
  sed 's/^## /## /' bench/results/proxy.md | sed 's|](proxy-latency.png)|](proxy-latency.png)|'
  echo
  sed 's/^## /## /' bench/results/tls.md
  echo
  echo "## Static files: gatehouse vs nginx and Caddy (\`bench/static/run.sh\`)"
  echo
  echo '```text'; cat bench/results/static.txt; echo '```'
  echo
  echo "## Rate limits: gatehouse vs nginx limit_req (\`bench/ratelimit/run.sh\`)"
  echo
  echo '```text'; cat bench/results/ratelimit.txt; echo '```'
  echo
  echo "## Django: gatehouse workers vs nginx + gunicorn, Caddy + gunicorn and uWSGI (\`bench/workers/run.sh\`)"
  echo
  echo '```text'; cat bench/results/workers.txt; echo '```'
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"

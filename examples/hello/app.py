#!/usr/bin/env python3
"""A small app that needs only Python's standard library, to try gatehouse
without Django. It serves HTTP on $PORT (default 8000) or on the Unix
socket $GATEHOUSE_SOCKET when gatehouse gives one.

Routes:
  /              an HTML page
  /api/hello     JSON, with what the app learned about the client
  /slow?ms=N     answers after N milliseconds
  /events        Server-Sent Events: five ticks, 200 ms apart
  /echo          POST: echoes the body back
  /download      X-Accel-Redirect to /protected/notes.txt (an internal mount)
"""
import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import UnixStreamServer, ThreadingMixIn
from urllib.parse import parse_qs, urlparse

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gatehouse example</title>
<link rel="stylesheet" href="/static/hello.css">
<script src="/static/hello.js" defer></script></head>
<body><h1>Hello from behind gatehouse</h1>
<p id="who">asking the app who you are...</p>
<p>Try <a href="/api/hello">/api/hello</a>, <a href="/slow?ms=500">/slow</a>,
<a href="/events">/events</a> and <a href="/media/notes.txt">/media/notes.txt</a>.</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello/1"
    # One segment per response: without this, Nagle plus delayed ACK adds
    # 40 ms to every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("hello: " + (fmt % args) + "\n")

    def send(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            return self.send(200, "text/html; charset=utf-8", PAGE)
        if url.path == "/api/hello":
            body = json.dumps({
                "message": "hello",
                "client_ip": self.headers.get("X-Real-IP"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
                "proto": self.headers.get("X-Forwarded-Proto"),
                "host": self.headers.get("Host"),
                "request_id": self.headers.get("X-Request-ID"),
                "pid": os.getpid(),
            }).encode()
            return self.send(200, "application/json", body)
        if url.path == "/download":
            # The protected-media pattern: the app decides, gatehouse sends
            # the file from an internal static mount.
            return self.send(200, "text/plain", b"", [
                ("X-Accel-Redirect", "/protected/notes.txt"),
                ("Content-Disposition", 'attachment; filename="notes.txt"'),
            ])
        if url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
            time.sleep(ms / 1000)
            return self.send(200, "text/plain", b"slept %d ms\n" % ms)
        if url.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                chunk = b"data: tick %d\n\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
            return
        return self.send(404, "text/plain", b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if urlparse(self.path).path == "/echo":
            return self.send(200, self.headers.get("Content-Type", "application/octet-stream"), body)
        return self.send(404, "text/plain", b"not found\n")


class UnixHandler(Handler):
    # TCP_NODELAY does not apply to Unix sockets (setsockopt fails).
    disable_nagle_algorithm = False


class UnixHTTPServer(ThreadingMixIn, UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)


def main():
    sock = os.environ.get("GATEHOUSE_SOCKET")
    if sock:
        if os.path.exists(sock):
            os.unlink(sock)
        srv = UnixHTTPServer(sock, UnixHandler)
    else:
        port = int(os.environ.get("PORT", "8000"))
        ThreadingHTTPServer.daemon_threads = True
        srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""gatehouse WSGI worker shim: runs one WSGI application for gatehouse.

gatehouse carries this file in its binary and runs it with app.python.
It needs only the Python standard library. gatehouse passes:

  fd 3 (GATEHOUSE_LISTEN_FD)  a listening Unix socket only gatehouse connects to
  fd 4 (GATEHOUSE_READY_FD)   a pipe: "ready <pid>" is written once the app imported
  GATEHOUSE_WSGI              module:callable
  GATEHOUSE_THREADS           requests served at once (one thread per connection)

Wire protocol (both ways): frames of a 1-byte type, a 4-byte big-endian
length and the payload (at most 1 MiB).

  gatehouse -> shim   Q environ, then B body chunks, then E (end of body)
  shim -> gatehouse   H head, D body chunks,
                      F (response complete) or X message (aborted after H)

Q is the environ's keys and values separated by NUL bytes; when a value holds
a NUL (a %00 in the path) gatehouse sends R instead: pairs of a 2-byte key
length, the key, a 4-byte value length, the value. Keys and values are bytes;
the shim decodes them as latin-1 (PEP 3333). H is ":status", the status
line, then header names and values, NUL-separated.

Signals: SIGTERM stops accepting, lets requests in progress finish, exits.
SIGUSR1 dumps every thread's stack to stderr (gatehouse does this to a
worker that passed its timeout, before killing it).
"""

import faulthandler
import gc
import importlib
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

HDR = struct.Struct(">BI")
PAIR_K = struct.Struct(">H")
PAIR_V = struct.Struct(">I")
MAX_FRAME = 1 << 20
CHUNK = 256 << 10
RBUF = 128 << 10  # a connection's read buffer; a larger frame grows it

# Frame types, as the bytes HDR unpacks them to.
Q, R, B, E, H, D, F, X = b"QRBEHDFX"
END = HDR.pack(E, 0)
FIN = HDR.pack(F, 0)
NO_CTL = str.maketrans("", "", "\r\n\0")


class ProtocolError(Exception):
    pass


class Stop(Exception):
    pass


class Conn:
    """One connection from gatehouse. Frames are read with recv_into into a
    buffer kept for the connection's life: a request without a body (its
    Q and E frames) is one recv and no copy."""

    __slots__ = ("sock", "buf", "mv", "start", "end")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(RBUF)
        self.mv = memoryview(self.buf)
        self.start = self.end = 0

    def _want(self, need):
        """Makes need bytes available at self.start, reading as needed."""
        if self.start + need > len(self.buf):
            rest = bytes(self.mv[self.start:self.end])
            if need > len(self.buf):
                self.mv.release()
                self.buf = bytearray(need)
                self.mv = memoryview(self.buf)
            self.mv[: len(rest)] = rest
            self.start, self.end = 0, len(rest)
        mv, recv_into = self.mv, self.sock.recv_into
        while self.end - self.start < need:
            n = recv_into(mv[self.end:])
            if not n:
                raise EOFError
            self.end += n

    def read_frame(self):
        """Returns the next frame's type and payload, a memoryview that is
        valid until the next read."""
        if self.start == self.end:
            self.start = self.end = 0
        if self.end - self.start < 5:
            self._want(5)
        t, n = HDR.unpack_from(self.buf, self.start)
        if n > MAX_FRAME:
            raise ProtocolError("frame too large: %d" % n)
        i = self.start + 5
        if self.end - i < n:
            self.start = i - 5
            self._want(5 + n)
            i = self.start + 5
        self.start = i + n
        return t, self.mv[i : i + n]

    def take_end(self):
        """Consumes an E frame if it is next in the buffer (a request
        without a body), so the request needs no further read."""
        i = self.start
        if self.end - i >= 5 and self.buf.startswith(END, i):
            self.start = i + 5
            return True
        return False

    def send(self, t, payload=b""):
        if len(payload) <= 8192:
            self.sock.sendall(HDR.pack(t, len(payload)) + payload)
        else:
            self.sock.sendall(HDR.pack(t, len(payload)))
            self.sock.sendall(payload)

    def send_data(self, data):
        mv = memoryview(data)
        while len(mv) > MAX_FRAME:
            self.send(D, mv[:MAX_FRAME])
            mv = mv[MAX_FRAME:]
        if len(mv):
            self.send(D, mv)


def decode_pairs(p):
    p = bytes(p)
    env = {}
    i, n = 0, len(p)
    while i < n:
        (kl,) = PAIR_K.unpack_from(p, i)
        i += 2
        k = p[i : i + kl].decode("latin-1")
        i += kl
        (vl,) = PAIR_V.unpack_from(p, i)
        i += 4
        env[k] = p[i : i + vl].decode("latin-1")
        i += vl
    if i != n:
        raise ProtocolError("bad pairs")
    return env


def encode_head(status, headers):
    """The H frame payload: ":status", status, names and values, NUL-separated
    (start_response has refused NULs in them)."""
    out = [":status", status]
    for k, v in headers:
        out.append(k)
        out.append(v)
    return "\0".join(out).encode("latin-1")


def check_response(status, headers):
    """start_response's checks (PEP 3333; no CR, LF or NUL that could split
    the head), made on the joined head in a few C-level scans. Returns the
    head as a NUL-separated str and whether it has a Content-Length."""
    try:
        flat = [":status", status]
        for name, value in headers:
            flat.append(name)
            flat.append(value)
        head = "\0".join(flat)
    except (TypeError, ValueError):
        head = None
    if (head is None or len(head) - len(head.translate(NO_CTL)) != len(flat) - 1
            or len(status) < 4 or not status[:3].isdigit() or status[3] != " "
            or ":" in "\0".join(flat[2::2])):
        check_slowly(status, headers)
        raise ValueError("invalid response head")
    return head, "\0content-length\0" in head.lower()


def check_slowly(status, headers):
    """Raises the precise error for a head check_response refused."""
    if (not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit()
            or status[3] != " " or any(c in status for c in "\r\n\0")):
        raise ValueError("bad status %r" % (status,))
    for pair in headers:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError("headers must be (name, value) pairs: %r" % (pair,)) from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str: %r" % ((name, value),))
        if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0:"):
            raise ValueError("invalid header %r" % ((name, value),))


class Input:
    """wsgi.input: the request body, read from B frames as the app asks.
    It ends at the E frame, so it never reads past the body (bounded)."""

    __slots__ = ("conn", "buf", "done")

    def __init__(self, conn, done):
        self.conn = conn
        self.buf = bytearray()
        self.done = done

    def _fill(self):
        t, p = self.conn.read_frame()
        if t == B:
            self.buf += p
        elif t == E:
            self.done = True
        else:
            raise ProtocolError("unexpected frame %r in body" % chr(t))

    def read(self, size=-1):
        if size is None or size < 0:
            while not self.done:
                self._fill()
            data = bytes(self.buf)
            self.buf.clear()
            return data
        while len(self.buf) < size and not self.done:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def readline(self, size=-1):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0 or self.done or (size is not None and 0 <= size <= len(self.buf)):
                break
            self._fill()
        end = i + 1 if i >= 0 else len(self.buf)
        if size is not None and size >= 0:
            end = min(end, size)
        data = bytes(self.buf[:end])
        del self.buf[:end]
        return data

    def readlines(self, hint=None):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint and total >= hint:
                return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def drain(self):
        while not self.done:
            t, _ = self.conn.read_frame()
            if t == E:
                self.done = True
            elif t != B:
                raise ProtocolError("unexpected frame %r in body" % chr(t))


class FileWrapper:
    """wsgi.file_wrapper: iterates a file in blocks; close() closes it."""

    def __init__(self, filelike, blksize=CHUNK):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        while True:
            data = self.filelike.read(self.blksize)
            if not data:
                return
            yield data


class Worker:
    def __init__(self, app, threads):
        self.app = app
        self.threads = threads
        # Connections with a request in progress. set.add and set.discard
        # are atomic, so the request path takes no lock; shutdown polls it.
        self.active = set()
        # What every environ starts with; each request copies it and adds
        # the CGI variables gatehouse sent.
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }

    def serve_conn(self, sock):
        conn = Conn(sock)
        active = self.active
        try:
            while True:
                try:
                    t, p = conn.read_frame()
                except (EOFError, OSError):
                    return
                if t == Q:
                    parts = str(p, "latin-1").split("\0")
                    if len(parts) % 2:
                        raise ProtocolError("odd environ")
                    environ = self.base.copy()
                    it = iter(parts)
                    environ.update(zip(it, it))
                elif t == R:
                    environ = self.base.copy()
                    environ.update(decode_pairs(p))
                else:
                    raise ProtocolError("want a request head, got %r" % chr(t))
                active.add(conn)
                try:
                    if not self.handle(conn, environ, Input(conn, conn.take_end())):
                        return
                finally:
                    active.discard(conn)
        except ProtocolError as e:
            print("gatehouse shim: protocol error: %s" % e, file=sys.stderr)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def handle(self, conn, environ, inp):
        """Serves one request. Returns False when the connection is unusable."""
        environ["wsgi.input"] = inp
        environ["wsgi.errors"] = sys.stderr
        head_only = environ.get("REQUEST_METHOD") == "HEAD"
        status = head = None
        has_length = sent = False

        def send_head():
            nonlocal sent
            if not sent:
                sent = True
                conn.send(H, head.encode("latin-1"))

        def write(data):
            if status is None:
                raise AssertionError("write() before start_response()")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("write() argument must be bytes, not %s" % type(data).__name__)
            send_head()
            if data and not head_only:
                conn.send_data(data)

        def start_response(st, headers, exc_info=None):
            nonlocal status, head, has_length
            if exc_info:
                try:
                    if sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif status is not None:
                raise AssertionError("start_response() called twice without exc_info")
            head, has_length = check_response(st, headers)
            status = st
            return write

        result = None
        aborted = False
        try:
            result = self.app(environ, start_response)
            if result.__class__ is list or isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False:
                # A body that is all there (a list, a non-streaming Django
                # response): head, body and end go out in one write.
                if status is None:
                    raise AssertionError("app returned without calling start_response()")
                chunks = [data for data in result if data]
                frames = []
                if not sent:
                    h = head
                    if not has_length and status[0] != "1" and status[:3] not in ("204", "304"):
                        # The whole body is known: say its length, so the
                        # front need not chunk it and flush every write.
                        h += "\0Content-Length\0%d" % sum(map(len, chunks))
                    h = h.encode("latin-1")
                    frames += [HDR.pack(H, len(h)), h]
                if not head_only:
                    for data in chunks:
                        if len(data) <= MAX_FRAME:
                            frames += [HDR.pack(D, len(data)), data]
                            continue
                        mv = memoryview(data)
                        while len(mv):
                            frames += [HDR.pack(D, min(len(mv), MAX_FRAME)), mv[:MAX_FRAME]]
                            mv = mv[MAX_FRAME:]
                frames.append(FIN)
                sent = True
                conn.sock.sendall(b"".join(frames))
                self.close_result(result)
                if not inp.done:
                    try:
                        inp.drain()
                    except (OSError, EOFError):
                        return False
                return True
            for data in result:
                if status is None:
                    raise AssertionError("app returned data before start_response()")
                if data:
                    write(data)
            if status is None:
                raise AssertionError("app returned without calling start_response()")
            send_head()
        except OSError:
            # gatehouse hung up (client gone, timeout): the connection is done.
            self.close_result(result)
            return False
        except Exception:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            if sent:
                aborted = True
            else:
                body = b"Internal Server Error"
                try:
                    conn.send(H, encode_head("500 Internal Server Error",
                                             [("Content-Type", "text/plain; charset=utf-8"),
                                              ("Content-Length", str(len(body)))]))
                    if not head_only:
                        conn.send(D, body)
                except OSError:
                    self.close_result(result)
                    return False
        self.close_result(result)
        try:
            if aborted:
                conn.send(X, b"application error after the response started")
            else:
                conn.send(F)
            inp.drain()
        except (OSError, EOFError):
            return False
        return True

    @staticmethod
    def close_result(result):
        # PEP 3333: close() is called whenever the iterable has one, even
        # when the app or the connection failed.
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                traceback.print_exc(file=sys.stderr)


def load(spec):
    mod, _, name = spec.partition(":")
    obj = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


PROFILES = []


def profiled(serve, path):
    """For measuring the shim, not for production: GATEHOUSE_SHIM_PROFILE=path
    (in app.env) profiles each connection with cProfile; the stats go to
    path.<pid> when the worker stops (SIGTERM)."""
    import cProfile

    def run(sock):
        prof = cProfile.Profile()
        PROFILES.append((path, prof))
        prof.runcall(serve, sock)

    return run


def dump_profiles():
    import pstats

    stats = None
    for path, prof in PROFILES:
        prof.disable()
        if stats is None:
            stats = pstats.Stats(prof)
        else:
            stats.add(prof)
    if stats is not None:
        stats.dump_stats("%s.%d" % (PROFILES[0][0], os.getpid()))


def main():
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    sys.path.insert(0, os.getcwd())
    listener = socket.socket(fileno=int(os.environ.get("GATEHOUSE_LISTEN_FD", "3")))
    ready_fd = int(os.environ.get("GATEHOUSE_READY_FD", "4"))
    threads = int(os.environ.get("GATEHOUSE_THREADS", "1"))
    try:
        app = load(os.environ["GATEHOUSE_WSGI"])
    except BaseException:
        print("gatehouse: cannot load WSGI app %r:" % os.environ.get("GATEHOUSE_WSGI"), file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)
    # What the import built lives as long as the process: keep it out of
    # every future collection (full passes no longer walk it). The
    # thresholds stay: a larger young generation measured slower on the
    # example's ORM view (more garbage collection time per request, not less).
    gc.collect()
    gc.freeze()
    worker = Worker(app, threads)
    serve = worker.serve_conn
    if os.environ.get("GATEHOUSE_SHIM_PROFILE"):
        serve = profiled(serve, os.environ["GATEHOUSE_SHIM_PROFILE"])

    def on_term(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.write(ready_fd, b"ready %d\n" % os.getpid())
    os.close(ready_fd)
    try:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=serve, args=(sock,), daemon=True).start()
    except Stop:
        pass
    listener.close()
    while worker.active:
        time.sleep(0.01)
    if os.environ.get("GATEHOUSE_SHIM_PROFILE"):
        dump_profiles()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

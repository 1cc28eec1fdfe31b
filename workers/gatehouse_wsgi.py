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
import importlib
import os
import signal
import socket
import struct
import sys
import threading
import traceback

HDR = struct.Struct(">cI")
PAIR_K = struct.Struct(">H")
PAIR_V = struct.Struct(">I")
MAX_FRAME = 1 << 20
CHUNK = 256 << 10


class ProtocolError(Exception):
    pass


class Stop(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=64 << 10)

    def read_frame(self):
        h = self.rfile.read(5)
        if len(h) < 5:
            raise EOFError
        t, n = HDR.unpack(h)
        if n > MAX_FRAME:
            raise ProtocolError("frame too large: %d" % n)
        p = self.rfile.read(n) if n else b""
        if len(p) < n:
            raise EOFError
        return t, p

    def send(self, t, payload=b""):
        if len(payload) <= 8192:
            self.sock.sendall(HDR.pack(t, len(payload)) + payload)
        else:
            self.sock.sendall(HDR.pack(t, len(payload)))
            self.sock.sendall(payload)

    def send_data(self, data):
        mv = memoryview(data)
        while len(mv) > MAX_FRAME:
            self.send(b"D", mv[:MAX_FRAME])
            mv = mv[MAX_FRAME:]
        if len(mv):
            self.send(b"D", mv)


def decode_pairs(p):
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


class Input:
    """wsgi.input: the request body, read from B frames as the app asks.
    It ends at the E frame, so it never reads past the body (bounded)."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = bytearray()
        self.done = False

    def _fill(self):
        t, p = self.conn.read_frame()
        if t == b"B":
            self.buf += p
        elif t == b"E":
            self.done = True
        else:
            raise ProtocolError("unexpected frame %r in body" % t)

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
            if t == b"E":
                self.done = True
            elif t != b"B":
                raise ProtocolError("unexpected frame %r in body" % t)


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
        self.lock = threading.Lock()
        self.busy = 0
        self.idle = threading.Condition(self.lock)
        self.stopping = False

    def serve_conn(self, sock):
        conn = Conn(sock)
        try:
            while True:
                try:
                    t, p = conn.read_frame()
                except (EOFError, OSError):
                    return
                if t == b"Q":
                    parts = p.decode("latin-1").split("\0")
                    if len(parts) % 2:
                        raise ProtocolError("odd environ")
                    environ = dict(zip(parts[0::2], parts[1::2]))
                elif t == b"R":
                    environ = decode_pairs(p)
                else:
                    raise ProtocolError("want a request head, got %r" % t)
                with self.lock:
                    self.busy += 1
                try:
                    if not self.handle(conn, environ):
                        return
                finally:
                    with self.lock:
                        self.busy -= 1
                        if self.busy == 0:
                            self.idle.notify_all()
        except ProtocolError as e:
            print("gatehouse shim: protocol error: %s" % e, file=sys.stderr)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def handle(self, conn, environ):
        """Serves one request. Returns False when the connection is unusable."""
        inp = Input(conn)
        head_only = environ.get("REQUEST_METHOD") == "HEAD"
        environ.update(
            {
                "wsgi.version": (1, 0),
                "wsgi.input": inp,
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": self.threads > 1,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
                "wsgi.file_wrapper": FileWrapper,
                "wsgi.input_terminated": True,
            }
        )
        environ.setdefault("wsgi.url_scheme", "http")
        state = {"status": None, "headers": None, "sent": False}

        def send_head():
            if not state["sent"]:
                state["sent"] = True
                conn.send(b"H", encode_head(state["status"], state["headers"]))

        def write(data):
            if state["status"] is None:
                raise AssertionError("write() before start_response()")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("write() argument must be bytes, not %s" % type(data).__name__)
            send_head()
            if data and not head_only:
                conn.send_data(data)

        def start_response(status, headers, exc_info=None):
            if exc_info:
                try:
                    if state["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state["status"] is not None:
                raise AssertionError("start_response() called twice without exc_info")
            if (not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit()
                    or status[3] != " " or any(c in status for c in "\r\n\0")):
                raise ValueError("bad status %r" % (status,))
            hs = []
            for name, value in headers:
                if not isinstance(name, str) or not isinstance(value, str):
                    raise TypeError("header names and values must be str: %r" % ((name, value),))
                if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0:"):
                    raise ValueError("invalid header %r" % ((name, value),))
                hs.append((name, value))
            state["status"], state["headers"] = status, hs
            return write

        result = None
        aborted = False
        try:
            result = self.app(environ, start_response)
            if isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False:
                # A body that is all there (a list, a non-streaming Django
                # response): head, body and end go out in one write.
                if state["status"] is None:
                    raise AssertionError("app returned without calling start_response()")
                chunks = [data for data in result if data]
                frames = []
                if not state["sent"]:
                    headers = state["headers"]
                    code = state["status"][:3]
                    if code not in ("204", "304") and code[0] != "1" and not any(
                            k.lower() == "content-length" for k, _ in headers):
                        # The whole body is known: say its length, so the
                        # front need not chunk it and flush every write.
                        headers = headers + [("Content-Length", str(sum(len(c) for c in chunks)))]
                    head = encode_head(state["status"], headers)
                    frames += [HDR.pack(b"H", len(head)), head]
                if not head_only:
                    for data in chunks:
                        mv = memoryview(data)
                        while len(mv):
                            frames += [HDR.pack(b"D", min(len(mv), MAX_FRAME)), mv[:MAX_FRAME]]
                            mv = mv[MAX_FRAME:]
                frames.append(HDR.pack(b"F", 0))
                state["sent"] = True
                conn.sock.sendall(b"".join(frames))
                self.close_result(result)
                try:
                    inp.drain()
                except (OSError, EOFError):
                    return False
                return True
            for data in result:
                if state["status"] is None:
                    raise AssertionError("app returned data before start_response()")
                if data:
                    write(data)
            if state["status"] is None:
                raise AssertionError("app returned without calling start_response()")
            send_head()
        except OSError:
            # gatehouse hung up (client gone, timeout): the connection is done.
            self.close_result(result)
            return False
        except Exception:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            if state["sent"]:
                aborted = True
            else:
                body = b"Internal Server Error"
                try:
                    conn.send(b"H", encode_head("500 Internal Server Error",
                                                [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("Content-Length", str(len(body)))]))
                    if not head_only:
                        conn.send(b"D", body)
                except OSError:
                    self.close_result(result)
                    return False
        self.close_result(result)
        try:
            if aborted:
                conn.send(b"X", b"application error after the response started")
            else:
                conn.send(b"F")
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
    worker = Worker(app, threads)

    def on_term(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.write(ready_fd, b"ready %d\n" % os.getpid())
    os.close(ready_fd)
    try:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=worker.serve_conn, args=(sock,), daemon=True).start()
    except Stop:
        pass
    listener.close()
    with worker.lock:
        while worker.busy:
            worker.idle.wait()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

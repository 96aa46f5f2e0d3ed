#!/usr/bin/env python3
# tools/fault_upstream.py: a fault-injecting HTTP/1.1 upstream for fusebox's integration tests,
# demos and benchmarks. Every request picks its own misbehaviour with query parameters on any path
# (so a proxy route prefix does not matter), and POST /__mode sets a default for requests that carry
# no query, so a test can turn the upstream from healthy to broken while traffic keeps flowing.
#
#   tools/fault_upstream.py [--listen HOST:PORT] [--quiet]    (default 127.0.0.1:8080; port 0: any)
#
# Prints "ready HOST:PORT" (the real port) on stdout once listening; logs one line per request on
# stderr unless --quiet; SIGTERM/SIGINT exit 0.
#
# Query parameters (combine freely; unknown ones are ignored):
#   status=N     response status (default 200)         delay=MS     wait, then answer (or reset=1)
#   body=TEXT    response body (default "ok\n")         size=N       N bytes of 'x', streamed
#   chunked=1    Transfer-Encoding: chunked, chunks of at most 16 KiB
#   echo=1       the request described as JSON          echo=body    the request body, streamed back
#   hang=1       read the request, never answer         trickle=MS   one response byte every MS
#   reset=1      RST instead of a response              reset=mid    head, half the body, then RST
#   truncate=1   half the body, then FIN (chunked: no last chunk; else Content-Length too large)
#   close=1      Connection: close                      header=Name:Value   extra header, repeatable
# The body is echo=, else size=, else body=. header=Content-Type:... replaces our Content-Type; any
# other header= is added as is, even a conflicting Content-Length (a broken response on purpose).
# Upgrade requests (Upgrade + Connection: upgrade) get 101, then a raw byte echo.
#
# Control endpoints, never counted: GET /__stats, POST /__reset, POST /__mode?PARAMS (no query:
# clear). A connection is counted once it sends its first non-control request, so a test that
# asks for stats on its own connection does not disturb the numbers; active_connections is those
# counted connections still open, a gauge that /__reset leaves alone.
#
# What it is not: a general web server or an HTTP conformance reference. It trusts its client,
# speaks no TLS or HTTP/2, has no idle timeout and is meant for loopback only. Its parser is strict
# on purpose (bare LF, obs-fold, Content-Length together with Transfer-Encoding all get 400): if
# fusebox ever forwards such a request, the test should see it rather than have it papered over.
# Python 3.11 standard library only, so every test machine can run it without a virtualenv.

import argparse
import asyncio
import base64
import collections
import fcntl
import hashlib
import http
import json
import os
import re
import signal
import socket
import struct
import sys
import termios
import threading
import time
import traceback
from functools import lru_cache
from urllib.parse import parse_qsl

MAX_HEAD = 64 * 1024          # request line + headers; also the stream reader's buffer limit
MAX_HEADERS = 256
STREAM_BLOCK = 64 * 1024      # write size for size= and echo=body
CHUNK_MAX = 16 * 1024         # largest chunk we send with chunked=1
LINGER_S = 1.0                # how long a graceful close waits for the client's FIN

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_CTL_OR_SPACE = re.compile(rb"[\x00-\x20\x7f]")
_OTHER_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_XS = memoryview(b"x" * STREAM_BLOCK)
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_EMPTY_SHA256 = hashlib.sha256().hexdigest()
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_CONTROL = (b"/__stats", b"/__reset", b"/__mode")

CLOSED = object()             # dispatch result: the connection is already closed or reset


class BadRequest(Exception):
    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.status = status


class Stats:
    connections = 0       # connections that sent at least one non-control request
    requests = 0          # non-control requests
    active = 0            # counted connections still open (a gauge: /__reset keeps it)


STATS = Stats()


# ---------------------------------------------------------------------------------------------
# Plans: what to do with a request, parsed once per distinct query string (cached, because a
# benchmark sends the same query thousands of times a second).

ECHO_JSON, ECHO_BODY = "json", "body"
RESET_NOW, RESET_MID = "now", "mid"
_TRUE = ("", "1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Plan:
    __slots__ = ("status", "delay", "body", "size", "chunked", "echo", "hang", "reset", "trickle",
                 "truncate", "close", "header_lines", "has_ctype")

    def __init__(self):
        self.status = 200
        self.delay = 0.0          # seconds
        self.body = b"ok\n"
        self.size = None
        self.chunked = False
        self.echo = None
        self.hang = False
        self.reset = None
        self.trickle = 0.0        # seconds per byte
        self.truncate = False
        self.close = False
        self.header_lines = b""
        self.has_ctype = False    # header=Content-Type:... replaces our default


def _flag(name, value):
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{name}={value!r}: expected 1 or 0")


def _number(name, value, kind, lo, hi):
    try:
        n = kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: not a number") from None
    if not lo <= n <= hi:   # also rejects nan
        raise ValueError(f"{name}={value!r}: out of range {lo}..{hi}")
    return n


@lru_cache(maxsize=4096)
def parse_plan(query):
    """query (bytes, without '?') -> Plan; ValueError names the offending parameter."""
    plan = Plan()
    headers = []
    # surrogateescape both ways so that body= and header= round-trip arbitrary bytes.
    for name, value in parse_qsl(query.decode("utf-8", "surrogateescape"), keep_blank_values=True,
                                 encoding="utf-8", errors="surrogateescape"):
        if name == "status":
            plan.status = _number(name, value, int, 100, 999)
        elif name == "delay":
            plan.delay = _number(name, value, float, 0, 86_400_000) / 1000
        elif name == "body":
            plan.body = value.encode("utf-8", "surrogateescape")
        elif name == "size":
            plan.size = _number(name, value, int, 0, 1 << 50)
        elif name == "chunked":
            plan.chunked = _flag(name, value)
        elif name == "echo":
            if value == "body":
                plan.echo = ECHO_BODY
            else:
                plan.echo = ECHO_JSON if _flag(name, value) else None
        elif name == "hang":
            plan.hang = _flag(name, value)
        elif name == "reset":
            if value == "mid":
                plan.reset = RESET_MID
            else:
                plan.reset = RESET_NOW if _flag(name, value) else None
        elif name == "trickle":
            plan.trickle = _number(name, value, float, 0, 86_400_000) / 1000
        elif name == "truncate":
            plan.truncate = _flag(name, value)
        elif name == "close":
            plan.close = _flag(name, value)
        elif name == "header":
            hname, sep, hvalue = value.partition(":")
            hname, hvalue = hname.strip(), hvalue.strip(" \t")
            raw_name = hname.encode("utf-8", "surrogateescape")
            raw_value = hvalue.encode("utf-8", "surrogateescape")
            if not sep or not _TOKEN.fullmatch(raw_name):
                raise ValueError(f"header={value!r}: expected Name:Value")
            if any(c in raw_value for c in b"\r\n\0"):
                raise ValueError(f"header={value!r}: CR, LF or NUL in the value")
            headers.append(raw_name + b": " + raw_value + b"\r\n")
            plan.has_ctype |= hname.lower() == "content-type"
        # Anything else is the application's own query and none of our business.
    plan.header_lines = b"".join(headers)
    return plan


DEFAULT_PLAN = parse_plan(b"")
MODE = None                   # the Plan set by POST /__mode, for requests without a query


@lru_cache(maxsize=None)
def status_line(code):
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (code, reason.encode("ascii"))


def frame(piece):
    return b"%x\r\n" % len(piece) + piece + b"\r\n"


async def _bytes_pieces(body, step):
    for i in range(0, len(body), step):
        yield body[i:i + step]


async def _x_pieces(size, step):
    while size > 0:
        n = min(size, step)
        yield _XS[:n]
        size -= n


# ---------------------------------------------------------------------------------------------
# Logging through a thread: a test harness that pipes our stderr and never reads it would
# otherwise freeze the event loop once the pipe fills, which would look like a fusebox hang.
# Lines are best-effort: if the thread falls far behind, the oldest are dropped.

class Log:
    def __init__(self, quiet):
        self.quiet = quiet
        self._lines = collections.deque(maxlen=100_000)
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._pump, name="log", daemon=True)
        self._thread.start()

    def __call__(self, line):
        self._lines.append(line)
        self._wake.set()

    def _pump(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self._stop:
                time.sleep(0.02)  # let lines pile up: one write per batch, not per request
            batch = []
            try:
                while True:
                    batch.append(self._lines.popleft())
            except IndexError:
                pass
            if batch:
                data = ("\n".join(batch) + "\n").encode("utf-8", "backslashreplace")
                try:
                    while data:
                        data = data[os.write(2, data):]
                except OSError:
                    pass
            if self._stop and not self._lines:
                return

    def close(self):
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=0.2)  # bounded: stderr may be a pipe nobody reads


# ---------------------------------------------------------------------------------------------
# One request head, parsed.

class Request:
    __slots__ = ("method", "target", "version", "headers", "length", "chunked", "conn", "expect",
                 "upgrade", "ws_key")

    @property
    def has_body(self):
        return self.chunked or bool(self.length)


def parse_head(line, lines):
    """Request line and header lines (each still ending in CRLF) -> Request, or BadRequest."""
    parts = line[:-2].split(b" ")
    if len(parts) != 3:
        raise BadRequest("malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if _OTHER_VERSION.fullmatch(version):
            raise BadRequest("unsupported HTTP version", 505)
        raise BadRequest("malformed request line")
    if not _TOKEN.fullmatch(method) or not target or _CTL_OR_SPACE.search(target):
        raise BadRequest("malformed request line")
    req = Request()
    req.method, req.target, req.version = method, target, version
    req.length, req.chunked, req.expect, req.upgrade, req.ws_key = None, False, False, None, None
    req.conn = ()
    headers = []
    te = None
    for h in lines:
        name, sep, value = h[:-2].partition(b":")
        # A leading space (obs-fold) or a space before the colon fails the token check.
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest("malformed header line")
        value = value.strip(b" \t")
        if b"\r" in value or b"\0" in value:
            raise BadRequest("CR or NUL in a header value")
        headers.append((name, value))
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise BadRequest("bad Content-Length")
            n = int(value)
            if req.length is not None and req.length != n:
                raise BadRequest("conflicting Content-Length headers")
            req.length = n
        elif lname == b"transfer-encoding":
            te = (te + b"," if te else b"") + value
        elif lname == b"connection":
            req.conn = req.conn + tuple(t.strip().lower() for t in value.split(b","))
        elif lname == b"expect":
            req.expect = value.lower() == b"100-continue"
        elif lname == b"upgrade":
            req.upgrade = value
        elif lname == b"sec-websocket-key":
            req.ws_key = value
    if te is not None:
        # Both framings at once is the classic smuggling shape (RFC 9112 6.3): refuse it.
        if req.length is not None:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        if te.rsplit(b",", 1)[-1].strip().lower() != b"chunked":
            raise BadRequest("Transfer-Encoding without final chunked")
        req.chunked = True
    req.headers = headers
    return req


# ---------------------------------------------------------------------------------------------
# One client connection: read a request, answer it, repeat. Pipelined requests are simply the
# next ones in the reader's buffer, so answering them one after another keeps them in order.

class Connection:
    def __init__(self, reader, writer, log):
        self.r, self.w, self.log = reader, writer, log
        peer = writer.get_extra_info("peername")
        self.peer = "%s:%s" % peer[:2] if peer else "?"
        self.counted = False
        self.started = False      # the current response's head is (partly) written
        self.trickled = False     # trickle: the first byte went out, so pause before the next
        self.t0 = 0.0

    async def run(self):
        try:
            while True:
                self.started = self.trickled = False
                req = None
                try:
                    req = await self.read_request()
                    if req is None:
                        break
                    keep = await self.dispatch(req)
                except BadRequest as e:
                    if self.started:  # mid-response (echo=body): nothing sane left to say
                        self.abort()
                    else:
                        await self.reject(req, e)
                    return
                if keep is CLOSED:
                    return
                if not keep:
                    break
            await self.close()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            self.abort()
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            self.log(f"{self.peer} internal error:\n{traceback.format_exc().rstrip()}")
            self.abort()
        finally:
            if self.counted:
                STATS.active -= 1

    # -- reading ------------------------------------------------------------------------------

    async def _line(self):
        try:
            line = await self.r.readline()
        except ValueError:  # longer than the reader's limit
            raise BadRequest("request head too large", 431) from None
        if line and line[-2:] != b"\r\n":
            if line[-1:] == b"\n":
                raise BadRequest("bare LF line ending")
            raise asyncio.IncompleteReadError(line, None)  # EOF in the middle of a line
        return line

    async def read_request(self):
        line = await self._line()
        # RFC 9112 2.2: tolerate a few empty lines before a request (some clients add a CRLF
        # after a body).
        for _ in range(4):
            if line != b"\r\n":
                break
            line = await self._line()
        if not line:
            return None  # clean EOF between requests
        self.t0 = time.monotonic()
        lines = []
        size = len(line)
        while True:
            h = await self._line()
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            if h == b"\r\n":
                break
            size += len(h)
            if size > MAX_HEAD or len(lines) >= MAX_HEADERS:
                raise BadRequest("request head too large", 431)
            lines.append(h)
        return parse_head(line, lines)

    async def body_pieces(self, req, step):
        """The request body, de-chunked, in pieces of at most step bytes, as it arrives."""
        r = self.r
        if not req.chunked:
            remaining = req.length or 0
            while remaining:
                data = await r.read(min(remaining, step))
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                yield data
            return
        while True:
            try:
                line = await r.readuntil(b"\r\n")
            except asyncio.LimitOverrunError:
                raise BadRequest("chunk size line too long") from None
            digits = line[:-2].split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(digits):
                raise BadRequest("bad chunk size")
            remaining = int(digits, 16)
            if remaining == 0:
                break
            while remaining:
                data = await r.read(min(remaining, step))
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                yield data
            if await r.readexactly(2) != b"\r\n":
                raise BadRequest("chunk data not followed by CRLF")
        size = 0
        while True:  # trailer fields: read and ignore
            line = await self._line()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if line == b"\r\n":
                return
            size += len(line)
            if size > MAX_HEAD:
                raise BadRequest("trailers too large", 431)

    async def read_body(self, req, hashing):
        """Consume the request body; returns (bytes, sha256 hex or None). Never buffers it."""
        if not req.has_body:
            return 0, _EMPTY_SHA256 if hashing else None
        digest = hashlib.sha256() if hashing else None
        if not req.chunked and req.length <= STREAM_BLOCK:
            data = await self.r.readexactly(req.length)  # the common small body: one await
            if digest:
                digest.update(data)
            return len(data), digest.hexdigest() if digest else None
        n = 0
        async for piece in self.body_pieces(req, STREAM_BLOCK):
            n += len(piece)
            if digest:
                digest.update(piece)
        return n, digest.hexdigest() if digest else None

    # -- dispatch -----------------------------------------------------------------------------

    async def dispatch(self, req):
        target = req.target
        q = target.find(b"?")
        path, query = (target, b"") if q < 0 else (target[:q], target[q + 1:])
        if req.version == b"HTTP/1.1":
            keep = b"close" not in req.conn
        else:
            keep = b"keep-alive" in req.conn
        # HTTP/1.0 clients do not know 100 (RFC 9110 15.2); without a body there is nothing
        # to wait for.
        if req.expect and req.version == b"HTTP/1.1" and req.has_body:
            self.w.write(_CONTINUE)

        if path in _CONTROL:
            return await self.control(req, path, query, keep)

        if not self.counted:
            self.counted = True
            STATS.connections += 1
            STATS.active += 1
        STATS.requests += 1

        if req.upgrade is not None and b"upgrade" in req.conn:
            return await self.upgrade(req)

        if query:
            try:
                plan = parse_plan(query)
            except ValueError as e:
                await self.read_body(req, False)
                return await self.simple(req, 400, f"fault_upstream: {e}\n".encode(), keep)
        else:
            plan = MODE or DEFAULT_PLAN
        if plan.close:
            keep = False

        bodiless = plan.status < 200 or plan.status in (204, 304) or req.method == b"HEAD"
        if plan.echo == ECHO_BODY and not bodiless and not plan.hang and plan.reset != RESET_NOW:
            return await self.echo_body(req, plan, keep)

        nbytes, sha = await self.read_body(req, plan.echo == ECHO_JSON)
        if plan.hang:
            self.note(req, "hang")
            while await self.r.read(STREAM_BLOCK):  # until the client gives up
                pass
            await self.close()
            return CLOSED
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.reset == RESET_NOW:
            self.note(req, "reset")
            self.rst()
            return CLOSED

        ctype = b"text/plain"
        if plan.echo == ECHO_JSON:
            body = json.dumps({
                "method": req.method.decode("latin-1"),
                "path": req.target.decode("latin-1"),
                "version": req.version.decode("latin-1"),
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in req.headers],
                "body_bytes": nbytes,
                "body_sha256": sha,
            }).encode() + b"\n"
            ctype = b"application/json"
            length = len(body)
        elif plan.echo == ECHO_BODY:
            # Only a body-less answer (HEAD, 204, 304) gets here; the head still tells the truth.
            body, length = b"", nbytes
            ctype = b"application/octet-stream"
        elif plan.size is not None:
            body, length = None, plan.size
        else:
            body = plan.body
            length = len(body)
        return await self.respond(req, plan, keep, body, length, plan.chunked, ctype)

    async def echo_body(self, req, plan, keep):
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if req.chunked:
            length, chunked = None, True  # length unknown until the last chunk
        else:
            length, chunked = req.length or 0, plan.chunked
        pieces = self.body_pieces(req, CHUNK_MAX if chunked else STREAM_BLOCK)
        return await self.respond(req, plan, keep, None, length, chunked,
                                  b"application/octet-stream", pieces)

    async def respond(self, req, plan, keep, body, length, chunked, ctype, pieces=None):
        """Send the response for plan. body is bytes, or None with pieces (echo=body) or plan.size.
        Returns keep, or CLOSED when a fault ended the connection."""
        status = plan.status
        bodiless = status < 200 or status in (204, 304)
        chunked = chunked and not bodiless
        cut = None  # truncate / reset=mid: stop after this many body bytes (-1: after one piece)
        if plan.truncate or plan.reset == RESET_MID:
            cut = length // 2 if length is not None else -1
        h = [status_line(status)]
        if not bodiless and not plan.has_ctype:
            h.append(b"Content-Type: " + ctype + b"\r\n")
        if chunked:
            h.append(b"Transfer-Encoding: chunked\r\n")
        elif not bodiless:
            # truncate of an empty body still needs a promise we can break.
            declared = 1 if plan.truncate and plan.reset is None and length == 0 else length
            h.append(b"Content-Length: %d\r\n" % declared)
        if not keep:
            h.append(b"Connection: close\r\n")
        elif req.version == b"HTTP/1.0":
            h.append(b"Connection: keep-alive\r\n")
        h.append(plan.header_lines)
        h.append(b"\r\n")
        head = b"".join(h)
        send_body = not bodiless and req.method != b"HEAD"

        if send_body and body is not None and cut is None and not plan.trickle:
            # The common case: one write, so head and body leave in one segment.
            if not chunked:
                data = head + body
            elif body:
                data = head + b"".join(frame(body[i:i + CHUNK_MAX])
                                       for i in range(0, len(body), CHUNK_MAX)) + _LAST_CHUNK
            else:
                data = head + _LAST_CHUNK
            self.started = True
            self.w.write(data)
            await self.w.drain()
            self.note(req, status)
            return keep

        await self.send(head, plan.trickle)
        if send_body:
            if pieces is None:
                step = CHUNK_MAX if chunked else STREAM_BLOCK
                pieces = _bytes_pieces(body, step) if body is not None else _x_pieces(length, step)
            try:
                if cut is None:
                    async for piece in pieces:
                        await self.send(frame(piece) if chunked else piece, plan.trickle)
                    if chunked:
                        await self.send(_LAST_CHUNK, plan.trickle)
                else:
                    sent = 0
                    async for piece in pieces:
                        room = cut - sent if cut >= 0 else len(piece)
                        if len(piece) >= room:
                            if room:
                                piece = piece[:room]
                                await self.send(frame(piece) if chunked else piece, plan.trickle)
                            break
                        await self.send(frame(piece) if chunked else piece, plan.trickle)
                        sent += len(piece)
            finally:
                await pieces.aclose()
        if cut is None:
            self.note(req, status)
            return keep
        if plan.reset == RESET_MID:
            self.note(req, f"{status} reset mid-body")
            # Let the kernel hand what we wrote to the client first: an RST discards whatever
            # is still queued in our send buffer.
            await self._flushed()
            self.rst()
        else:
            self.note(req, f"{status} truncated")
            await self.close()
        return CLOSED

    async def send(self, data, trickle):
        self.started = True
        w = self.w
        if not trickle:
            w.write(data)
            await w.drain()
            return
        for i in range(len(data)):
            if self.trickled:
                await asyncio.sleep(trickle)
            self.trickled = True
            w.write(data[i:i + 1])
            await w.drain()

    async def simple(self, req, status, body, keep, ctype=b"text/plain", extra=b""):
        h = [status_line(status)]
        if status != 204:
            h.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body)))
        if not keep:
            h.append(b"Connection: close\r\n")
        elif req.version == b"HTTP/1.0":
            h.append(b"Connection: keep-alive\r\n")
        h.append(extra)
        h.append(b"\r\n")
        if status != 204 and req.method != b"HEAD":
            h.append(body)
        self.started = True
        self.w.write(b"".join(h))
        await self.w.drain()
        self.note(req, status)
        return keep

    async def control(self, req, path, query, keep):
        global MODE
        await self.read_body(req, False)
        if path == b"/__stats":
            if req.method not in (b"GET", b"HEAD"):
                return await self.simple(req, 405, b"", keep, extra=b"Allow: GET, HEAD\r\n")
            body = json.dumps({"connections": STATS.connections, "requests": STATS.requests,
                               "active_connections": STATS.active}).encode() + b"\n"
            return await self.simple(req, 200, body, keep, ctype=b"application/json")
        if req.method != b"POST":
            return await self.simple(req, 405, b"", keep, extra=b"Allow: POST\r\n")
        if path == b"/__reset":
            STATS.connections = STATS.requests = 0
            return await self.simple(req, 204, b"", keep)
        # /__mode
        try:
            MODE = parse_plan(query) if query else None
        except ValueError as e:
            return await self.simple(req, 400, f"fault_upstream: {e}\n".encode(), keep)
        return await self.simple(req, 204, b"", keep)

    async def upgrade(self, req):
        await self.read_body(req, False)
        proto = req.upgrade.split(b",", 1)[0].strip()
        h = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ", proto,
             b"\r\nConnection: Upgrade\r\n"]
        if req.ws_key:
            accept = base64.b64encode(hashlib.sha1(req.ws_key + _WS_GUID).digest())
            h += [b"Sec-WebSocket-Accept: ", accept, b"\r\n"]
        h.append(b"\r\n")
        self.started = True
        self.w.write(b"".join(h))
        self.note(req, 101)
        # From here on the bytes are not HTTP: anything already buffered after the request head
        # belongs to the new protocol and is echoed like the rest.
        while True:
            data = await self.r.read(STREAM_BLOCK)
            if not data:
                break
            self.w.write(data)
            await self.w.drain()
        await self.close()
        return CLOSED

    # -- ending -------------------------------------------------------------------------------

    async def reject(self, req, e):
        body = f"fault_upstream: {e}\n".encode()
        self.w.write(status_line(e.status) + b"Content-Type: text/plain\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)
        self.started = True
        if not self.log.quiet:
            self.log(f"{self.peer} bad request: {e} -> {e.status}")
        await self.close()

    async def close(self):
        # Lingering close: closing a socket that still has unread input makes Linux send an RST,
        # which can destroy the response still on its way to the client (say, after a pipelined
        # request we will not answer). So send FIN, then discard input briefly until theirs.
        w = self.w
        try:
            await w.drain()
            if w.can_write_eof():
                w.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await self.r.read(STREAM_BLOCK):
                    pass
        except (ConnectionError, OSError, TimeoutError, RuntimeError):
            pass
        finally:
            w.close()

    async def _flushed(self, limit_s=5.0):
        # drain() only waits for asyncio's buffer to fall below its high-water mark, and the
        # kernel's send queue is what an RST throws away; wait (bounded) until both are empty.
        t = self.w.transport
        sock = self.w.get_extra_info("socket")
        deadline = time.monotonic() + limit_s
        while not t.is_closing() and time.monotonic() < deadline:
            queued = t.get_write_buffer_size()
            if not queued:
                try:
                    queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                            b"\0\0\0\0"))[0]
                except OSError:
                    queued = 0
            if not queued:
                return
            await asyncio.sleep(0.001)

    def rst(self):
        sock = self.w.get_extra_info("socket")
        try:
            # SO_LINGER on with timeout 0: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.w.transport.abort()

    def abort(self):
        self.w.transport.abort()

    def note(self, req, outcome):
        if not self.log.quiet:
            ms = (time.monotonic() - self.t0) * 1000
            self.log(f"{self.peer} {req.method.decode('latin-1')} {req.target.decode('latin-1')} "
                     f"{req.version.decode('latin-1')} -> {outcome} {ms:.1f}ms")


# ---------------------------------------------------------------------------------------------

def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(host, port, log):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    conns = set()

    async def on_client(reader, writer):
        c = Connection(reader, writer, log)
        conns.add(c)
        try:
            await c.run()
        except asyncio.CancelledError:
            # Shutdown. Swallowed because 3.11's stream callback calls task.exception() on a
            # cancelled task and logs a scary traceback for every open connection.
            pass
        finally:
            conns.discard(c)

    server = await asyncio.start_server(on_client, host, port, limit=MAX_HEAD, backlog=1024)
    addr = server.sockets[0].getsockname()
    shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    sys.stdout.write(f"ready {shown}:{addr[1]}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    # Hung and lingering connections would otherwise keep their tasks alive; asyncio.run()
    # cancels whatever is left once we return.
    for c in list(conns):
        c.abort()


def main():
    ap = argparse.ArgumentParser(description="Fault-injecting HTTP/1.1 upstream for fusebox tests.")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT",
                    help="address to listen on (default 127.0.0.1:8080; port 0 = any free port)")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")
    args = ap.parse_args()
    log = Log(args.quiet)
    try:
        asyncio.run(serve(*args.listen, log))
    except OSError as e:
        print(f"fault_upstream: cannot listen on {args.listen[0]}:{args.listen[1]}: {e}",
              file=sys.stderr)
        return 1
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

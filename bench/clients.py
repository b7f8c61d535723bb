"""Benchmark clients: one process holds many WebSocket connections.

A deliberately small client (an asyncio Protocol doing the RFC 6455 handshake and
unmasked server frames itself) rather than the `websockets` client: on a 2-core
machine the clients compete with the server for CPU, and the lighter they are, the
more of the measured latency is the server's. Every received frame is stamped with
time.monotonic() (CLOCK_MONOTONIC: one clock for all processes of the machine) the
moment its bytes arrive, and decoded only when the run collects the receipts.

The run (bench/run.py) drives each worker process over a multiprocessing pipe.
"""

import asyncio
import base64
import gc
import json
import os
import random
import socket
import struct
import threading
import time
from collections import Counter

_LINGER_RST = struct.pack("ii", 1, 0)


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class Conn(asyncio.Protocol):
    __slots__ = ("worker", "request", "buf", "opened", "transport", "ready", "cookie")

    def __init__(self, worker: "Worker", request: bytes) -> None:
        self.worker = worker
        self.request = request
        self.buf = bytearray()
        self.opened = worker.loop.create_future()
        self.transport = None
        self.ready = False
        self.cookie = None  # names the socket in entries()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        t = time.monotonic()
        buf = self.buf
        buf += data
        if not self.ready:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")[:60]))
                self.transport.close()
                return
            self.ready = True
            if not self.opened.done():  # not given up on (a handshake past its timeout)
                self.opened.set_result(True)
        got = self.frame
        while True:
            n = len(buf)
            if n < 2:
                return
            b0, b1 = buf[0], buf[1]
            length, offset = b1 & 0x7F, 2
            if length == 126:
                if n < 4:
                    return
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if n < 10:
                    return
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if n < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2):
                got(t, payload)
            elif opcode == 9:  # ping
                self.transport.write(_masked(0xA, payload))
            elif opcode == 8:  # close
                self.closed_with(payload)
                self.transport.write(_masked(0x8, payload[:2]))
                self.transport.close()
                return

    def frame(self, t: float, payload: bytes) -> None:
        self.worker.got(t, payload, self)

    def closed_with(self, payload: bytes) -> None:
        pass

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        self.worker.conns.discard(self)
        self.worker.closed_event_check()

    def abort(self) -> None:
        """Close with a RST: no TIME_WAIT eats the client's ephemeral ports between phases."""
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
        self.transport.abort()


def handshake(host, port, path, origin, cookie) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SyncingConn(Conn):
    """A client that resumes (bench/fleet.py's reconnect storm): it sends `sync` once open
    and notes when the answer's `synced` frame arrives, or the close code it got instead."""

    __slots__ = ("synced", "close_code", "close_reason")

    def __init__(self, worker: "Worker", request: bytes) -> None:
        super().__init__(worker, request)
        self.synced = worker.loop.create_future()
        self.synced.add_done_callback(lambda f: f.cancelled() or f.exception())  # a failed open never awaits it
        self.close_code, self.close_reason = None, ""

    def frame(self, t: float, payload: bytes) -> None:
        if not self.synced.done() and b'"synced"' in payload:
            self.synced.set_result(t)
        self.worker.got(t, payload, self)

    def closed_with(self, payload: bytes) -> None:
        if len(payload) >= 2:
            self.close_code = struct.unpack("!H", payload[:2])[0]
            self.close_reason = payload[2:].decode(errors="replace")

    def connection_lost(self, exc) -> None:
        if not self.synced.done():
            self.synced.set_exception(ConnectionError(f"closed {self.close_code} {self.close_reason}"))
        super().connection_lost(exc)


class Worker:
    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.conns: set[Conn] = set()
        self.receipts: list[tuple[float, bytes, Conn]] = []
        self.received = 0
        self._all_closed: asyncio.Event | None = None

    def got(self, t: float, payload: bytes, conn: Conn) -> None:
        self.receipts.append((t, payload, conn))
        self.received += 1

    def closed_event_check(self) -> None:
        if self._all_closed is not None and not self.conns:
            self._all_closed.set()

    async def _open(self, host: str, port: int, request: bytes, timeout: float, kind=Conn) -> Conn:
        made: list[Conn] = []

        async def go():
            _, conn = await self.loop.create_connection(lambda: made.append(kind(self, request)) or made[0], host, port)
            await conn.opened
            return conn

        try:
            conn = await asyncio.wait_for(go(), timeout)
        except BaseException:
            if made and made[0].transport is not None:
                made[0].abort()  # a late handshake must not leave an uncounted socket open
            raise
        self.conns.add(conn)
        return conn

    async def connect(self, host, port, path, origin, cookies, timeout) -> dict:
        requests = [handshake(host, port, path, origin, cookie) for cookie in cookies]
        done: list[float] = []
        errors: Counter = Counter()
        failed: list = []

        async def one(request, cookie):
            try:
                conn = await self._open(host, port, request, timeout)
                conn.cookie = cookie
                done.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors[f"{type(exc).__name__}: {exc}"[:80]] += 1
                failed.append(cookie)

        await asyncio.gather(*(one(r, c) for r, c in zip(requests, cookies, strict=True)))
        return {"ok": len(done), "failed": len(failed), "failed_cookies": failed,
                "last": max(done, default=None), "errors": dict(errors.most_common(5))}

    async def storm(self, host, ports, path, origin, cookies, jitter, timeout) -> dict:
        """Every socket back at once, as after a mass disconnect: each client waits a random
        part of `jitter` seconds, connects to ports[i % len(ports)], sends `sync` and waits
        for `synced`. Shed (4503 "retry after N"): it waits (0.5 to 1.5) x N s, as the browser does, and tries again; any
        other failure: exponential backoff with full jitter. Returns per-client figures."""
        rng = random.Random(os.getpid())
        start = time.monotonic()
        results = []
        failures: Counter = Counter()

        async def one(i, cookie):
            port = ports[i % len(ports)]
            await asyncio.sleep(rng.random() * jitter)
            attempts = sheds = 0
            backoff = 0.5
            while time.monotonic() - start < timeout:
                attempts += 1
                conn = None
                began = time.monotonic()
                try:
                    request = handshake(host, port, path, f"{origin}:{port}", cookie)
                    conn = await self._open(host, port, request, 30, SyncingConn)
                    conn.transport.write(_masked(0x1, b'{"type":"sync","after":0}'))
                    t = await asyncio.wait_for(conn.synced, 20)
                    results.append({"synced_at": t - start, "attempts": attempts, "sheds": sheds})
                    return
                except Exception as exc:  # noqa: BLE001 - retried
                    failures[_failure_kind(exc, conn, time.monotonic() - began)] += 1
                    if conn is not None and conn.close_code == 4503:
                        sheds += 1
                        try:
                            wait = float(conn.close_reason.rsplit(" ", 1)[-1])
                        except ValueError:
                            wait = 5.0
                        wait *= 0.5 + rng.random()  # as the browser does (static/inform/inform.js)
                    else:
                        wait = rng.random() * backoff
                        backoff = min(backoff * 2, 10)
                    if conn is not None:
                        self.conns.discard(conn)
                    await asyncio.sleep(wait)
            results.append({"synced_at": None, "attempts": attempts, "sheds": sheds})

        await asyncio.gather(*(one(i, c) for i, c in enumerate(cookies)))
        return {"clients": results, "started": start, "failures": dict(failures)}

    def entries(self) -> dict:
        """What each socket (by its cookie) would show from the inform frames it got since
        the last collect, as a client does (docs/protocol.md, Grouping): an entry per
        group, the one with the highest id, and one per ungrouped id. {cookie: {group or
        id: [id, count]}}. Call before collect()."""
        shown: dict = {}
        for _, payload, conn in self.receipts:
            if b'"inform"' not in payload:
                continue
            frame = json.loads(payload)
            if frame.get("type") != "inform":
                continue
            mine = shown.setdefault(conn.cookie, {})
            key = frame.get("group") or frame["id"]
            if key not in mine or mine[key][0] < frame["id"]:
                mine[key] = [frame["id"], frame.get("count", 1)]
        return shown

    def collect(self) -> list[tuple[float, str, object]]:
        """(t, kind, key): kind "inform" with the notification id, or "text" with the frame's text."""
        out = []
        for t, payload, _ in self.receipts:
            try:
                frame = json.loads(payload)
            except ValueError:
                out.append((t, "junk", None))
                continue
            if frame.get("type") == "inform":
                out.append((t, "inform", frame.get("id")))
            else:
                out.append((t, frame.get("type", "?"), frame.get("text")))
        self.receipts = []
        self.received = 0
        return out

    async def close_all(self, timeout: float = 10) -> int:
        n = len(self.conns)
        self._all_closed = asyncio.Event()
        for conn in list(self.conns):
            conn.abort()
        if self.conns:
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                pass
        self._all_closed = None
        self.conns.clear()
        return n

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()

        def reader():
            while True:
                try:
                    msg = self.pipe.recv()
                except (EOFError, OSError):
                    msg = ("quit",)
                self.loop.call_soon_threadsafe(commands.put_nowait, msg)
                if msg[0] == "quit":
                    return

        threading.Thread(target=reader, daemon=True).start()
        while True:
            cmd, *args = await commands.get()
            if cmd == "connect":
                result = await self.connect(*args)
                # Open connections live until "close": keep them out of the full collections
                # that would otherwise pause this process (and stamp receipts late) mid-broadcast.
                gc.collect()
                gc.freeze()
                self.pipe.send(result)
            elif cmd == "storm":
                result = await self.storm(*args)
                gc.collect()
                gc.freeze()
                self.pipe.send(result)
            elif cmd == "count":
                self.pipe.send({"received": self.received, "open": len(self.conns)})
            elif cmd == "collect":
                self.pipe.send(self.collect())
            elif cmd == "entries":
                self.pipe.send(self.entries())
            elif cmd == "close":
                closed = await self.close_all()
                gc.unfreeze()
                self.pipe.send(closed)
            elif cmd == "quit":
                await self.close_all(timeout=2)
                return


def _failure_kind(exc: BaseException, conn: "SyncingConn | None", after: float) -> str:
    """What a storm attempt ended with: a close code, a timeout (of the handshake or of
    the wait for `synced`), or the error, and how long after the attempt began."""
    if conn is not None and conn.close_code is not None:
        return f"close {conn.close_code}"
    if isinstance(exc, TimeoutError):
        return "timeout waiting for synced" if conn is not None else "timeout opening"
    when = "<1 s" if after < 1 else "1-5 s" if after < 5 else "5-30 s" if after < 30 else ">30 s"
    return f"{type(exc).__name__}: {exc}"[:50] + f" ({when})"


def worker_main(pipe) -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except Exception:  # noqa: BLE001
        pass
    asyncio.run(Worker(pipe).serve())

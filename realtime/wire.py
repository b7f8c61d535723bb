"""The last metre to the socket under daphne, measured (docs/performance.md).

Used only when the server is daphne and falling back to the plain
ASGI path anywhere else (tests' WebsocketCommunicator, uvicorn, ...):

* ``PreparedSend``: the ASGI ``websocket.send`` message the hub builds once per
  broadcast, which also carries the WebSocket frame, framed once. A socket whose
  server is daphne writes those bytes to its connection itself (autobahn's
  ``PreparedMessage``, the API autobahn provides for broadcasting, then one
  ``send()`` on the socket when Twisted has nothing queued for it) instead of going
  through Channels' session wrapper, daphne's reply dispatch, autobahn's per-socket
  framing and Twisted's deferred write for every recipient.
* ``defer_autobahn_config_dump()``: autobahn pretty-prints its whole protocol
  configuration for a debug log line on every connection, debug logging on or not
  (and colours method names for others, on every read).
* ``_share_factory_config()``: autobahn also copies that configuration onto every
  connection; after the first, connections read it from their class.
* ``trim_after_handshake()``: what an open connection keeps of its handshake that
  nothing reads again, and a smaller queue than daphne's (memory per idle socket).
"""

import asyncio
import collections
import functools
import logging
import pprint

log = logging.getLogger(__name__)

try:  # daphne (and with it autobahn) is what serves the site; tests may run without it
    import txaio
    from autobahn.websocket import protocol as _autobahn
    from autobahn.websocket.protocol import PreparedMessage
    from daphne.ws_protocol import WebSocketProtocol as _DaphneWebSocket
except ImportError:  # pragma: no cover
    _autobahn = _DaphneWebSocket = PreparedMessage = txaio = None


class PreparedSend(dict):
    """``{"type": "websocket.send", "text": text}`` plus the frame, built on first use."""

    __slots__ = ("_prepared",)

    def __init__(self, text: str) -> None:
        super().__init__(type="websocket.send", text=text)
        self._prepared = None

    @property
    def prepared(self):
        if self._prepared is None:
            self._prepared = PreparedMessage(self["text"].encode("utf8"), False, False, True)
        return self._prepared


def daphne_protocol(send):
    """For a consumer's ASGI ``send``: the daphne connection (autobahn protocol) behind
    it, or None when there is none to find or the fast path failed its self-check.

    The chain is the one daphne and Channels build: any number of wrappers whose
    ``send`` is a bound method of an object holding the next one as ``real_send``,
    ending in ``partial(Server.handle_reply, protocol)``.
    """
    if _DaphneWebSocket is None:
        return None
    protocol = _daphne_connection(send)
    if not isinstance(protocol, _DaphneWebSocket) or not fast_path_ok(protocol):
        return None
    _share_factory_config(protocol)
    return protocol


def _daphne_connection(send):
    """The daphne connection (a WebSocket protocol, or an HTTP request) behind an ASGI
    ``send``, or None."""
    for _ in range(8):
        if isinstance(send, functools.partial):
            if getattr(send.func, "__name__", "") != "handle_reply" or not send.args:
                return None
            return send.args[0]
        owner = getattr(send, "__self__", None)
        send = getattr(owner, "real_send", None)
        if send is None:
            return None
    return None


# What the fast path reads of autobahn's protocol, daphne's server and Twisted's
# transport: private attributes, checked once per process against the installed versions.
_PROTOCOL_ATTRS = ("state", "STATE_OPEN", "server", "_perMessageCompress", "send_queue", "sendPreparedMessage",
                   "CONFIG_ATTRS", "factory", "transport", "sendClose")
_TRANSPORT_ATTRS = ("socket", "connected", "disconnecting", "dataBuffer", "offset", "_tempDataBuffer",
                    "_tempDataLen", "write", "abortConnection")
_fast_path: bool | None = None


def fast_path_ok(protocol) -> bool:
    """Whether the installed daphne/autobahn/Twisted still have everything the fast path
    uses; if not, every socket takes the plain ASGI send and one WARNING says why."""
    global _fast_path
    if _fast_path is None:
        missing = [f"protocol.{a}" for a in _PROTOCOL_ATTRS if not hasattr(protocol, a)]
        transport = getattr(protocol, "transport", None)
        missing += [f"transport.{a}" for a in _TRANSPORT_ATTRS if not hasattr(transport, a)]
        if not hasattr(getattr(getattr(protocol, "server", None), "connections", None), "get"):
            missing.append("server.connections")
        try:
            PreparedMessage(b"{}", False, False, True).payloadHybi  # noqa: B018 - the attribute is the check
        except Exception:
            missing.append("PreparedMessage.payloadHybi")
        _fast_path = not missing
        if not missing:
            log.info("realtime fast path on: frames framed once and written to daphne's connections")
        else:
            log.warning(
                "realtime fast path disabled, using the plain ASGI send (slower broadcasts, no send backlog "
                "bound): the installed daphne/autobahn/Twisted lack %s", ", ".join(missing)
            )
    return _fast_path


def backlog_bytes(protocol) -> int:
    """Bytes written to this connection that the peer has not taken yet."""
    transport = protocol.transport
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def drop(protocol, code: int, reason: str) -> None:
    """Send a close frame and drop the connection now, discarding what is queued: used
    for a peer that stopped reading (a close handshake would wait behind its backlog)."""
    protocol.sendClose(code=code, reason=reason)
    protocol.transport.abortConnection()


def _share_factory_config(protocol) -> None:
    """autobahn copies ~60 options from the factory onto every connection's own __dict__,
    unless the protocol already has them; set once on the class, every later connection
    reads the same values from there (less memory per socket, docs/performance.md).
    daphne configures its one factory before it accepts anything, and never changes it."""
    cls = type(protocol)
    if "_factory_config_shared" in cls.__dict__:
        return
    for name in protocol.CONFIG_ATTRS:
        value = getattr(protocol.factory, name)
        # A function on the class would become a method of each connection (autobahn's
        # perMessageCompressionAccept would be called with the protocol as its offers):
        # those stay per connection.
        if not hasattr(type(value), "__get__"):
            setattr(cls, name, value)
    cls._factory_config_shared = True


def send_prepared(protocol, message: PreparedSend) -> None:
    """Write a PreparedSend straight to this daphne connection (daphne_protocol())."""
    # What daphne's Server.handle_reply and WebSocketProtocol.handle_reply would check.
    if protocol.state != protocol.STATE_OPEN:
        return  # closing or closed: daphne's path would raise Disconnected, the hub drops it
    server = protocol.server
    details = server.connections.get(protocol)
    if details is None or details.get("disconnected"):
        return
    prepared = message.prepared
    if protocol._perMessageCompress is None and not protocol.send_queue and _write_now(protocol.transport, prepared.payloadHybi):
        return
    protocol.sendPreparedMessage(prepared)


def _write_now(transport, data: bytes) -> bool:
    """Write to the socket now, as asyncio's own transports do, when Twisted has nothing
    queued for it; True when the bytes are sent or handed to Twisted in order.

    Twisted's ``transport.write`` never tries the socket at once: it queues the bytes,
    registers the socket for writability (an epoll_ctl), and sends on the next loop
    turn (then another epoll_ctl), most of a broadcast's CPU (docs/performance.md); one
    ``send()`` that almost always takes the whole frame avoids all of it. Anything
    unusual (TLS, queued bytes, a closing connection, a short or failed send) goes
    through Twisted's path, which keeps ordering and error handling its own.
    """
    sock = getattr(transport, "socket", None)
    if (
        sock is None
        or getattr(transport, "TLS", False)
        or not transport.connected
        or transport.disconnecting
        or transport._tempDataBuffer
        or transport.offset != len(transport.dataBuffer)
    ):
        return False
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        return False  # let Twisted meet the error its own way
    if sent < len(data):
        transport.write(data[sent:])
    return True


class _LazyPformat:
    """pprint.pformat(obj), computed only if someone formats it."""

    __slots__ = ("obj",)
    render = staticmethod(pprint.pformat)

    def __init__(self, obj, *args, **kwargs) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return self.render(self.obj)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _LazyHltype(_LazyPformat):
    """autobahn's hltype(obj) (a coloured name, with click), computed only if formatted."""

    __slots__ = ()
    render = None  # set with the original, below


def defer_autobahn_config_dump() -> None:
    """autobahn's WebSocketProtocol._connectionMade calls pprint.pformat on its ~50
    configuration attributes for a log.debug line, whether debug logging is on or not:
    a large share of daphne's CPU in a connection storm (docs/performance.md). Hand it
    a lazy value that is formatted only if the line is."""
    if _autobahn is None or _autobahn.pformat is _LazyPformat:
        return
    _autobahn.pformat = _LazyPformat
    # Likewise the Twisted adapter colours its method names (click) for a debug line on
    # every connect, read and disconnect: ~2 % of a process's CPU in a storm.
    from autobahn.twisted import websocket as _autobahn_twisted

    _LazyHltype.render = staticmethod(_autobahn_twisted.hltype)
    _autobahn_twisted.hltype = _LazyHltype
    # Timings.__str__ returns pformat's result as its own, so it must get a real str;
    # the other caller (startHandshake's debug line) is a log argument, formatted lazily.
    _autobahn.Timings.__str__ = lambda self: pprint.pformat(self._timings)


class Inbox:
    """What daphne's per-connection asyncio.Queue is to an open socket (daphne puts each
    message, the one consumer awaits them one at a time), in about 100 bytes instead of
    ~1.9 kB: an asyncio.Queue keeps two deques (its items and its waiting getters, a
    64-slot block each even when empty) and a coroutine for every pending get()."""

    __slots__ = ("_items", "_waiter")

    def __init__(self, items=()) -> None:
        self._items = collections.deque(items) if items else None
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():  # done: its get() was cancelled
            waiter.set_result(item)
            return
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)

    def get(self) -> asyncio.Future:
        """The next message, to await (one get() at a time: there is one consumer)."""
        future = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._items.popleft())
            if not self._items:
                self._items = None
        else:
            self._waiter = future
        return future


class SendQueue:
    """autobahn's per-connection send_queue (a deque, ~760 bytes with its first block even
    when empty) made on first use: autobahn queues only chopped or synchronous writes,
    which daphne never asks for, so an open socket normally never has one."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: collections.deque | None = None

    def __len__(self) -> int:
        return 0 if self._queue is None else len(self._queue)

    def append(self, item) -> None:
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(item)

    def popleft(self):
        if not self._queue:
            raise IndexError("pop from an empty deque")
        return self._queue.popleft()


# autobahn's per-connection state that is None or False on an open, idle connection
# (timers not running, nothing closing, no compression, the handshake's leftovers).
_IDLE_NONE = (
    "_perMessageCompress", "trackedTimings", "wasNotCleanReason", "localCloseCode", "localCloseReason",
    "remoteCloseCode", "remoteCloseReason", "openHandshakeTimeoutCall", "closeHandshakeTimeoutCall",
    "autoPingTimeoutCall", "autoPingPending", "autoPingPendingCall", "autoPingPendingSent", "http_request_data",
    "http_status_line", "http_response_data", "protocol_to_accept", "websocket_protocol_in_use", "current_frame",
)
_IDLE_FALSE = (
    "triggered", "wasMaxFramePayloadSizeExceeded", "wasMaxMessagePayloadSizeExceeded", "closedByMe", "failedByMe",
    "droppedByMe", "wasClean", "wasServerConnectionDropTimeout", "wasOpenHandshakeTimeout",
    "wasCloseHandshakeTimeout", "wasServingFlashSocketPolicyFile", "inside_message",
)
_idle_classes: dict = {}


def _idle_class(cls):
    """cls with the idle values above as class attributes (same name, so logs read the
    same), for the names cls itself leaves to its instances."""
    sub = _idle_classes.get(cls)
    if sub is None:
        defaults = {name: value for names, value in ((_IDLE_NONE, None), (_IDLE_FALSE, False)) for name in names
                    if getattr(cls, name, value) is value}
        sub = _idle_classes[cls] = type(cls.__name__, (cls,), {"__module__": cls.__module__, "_idle_class": True,
                                                              **defaults})
    return sub


def _compact(protocol) -> None:
    """autobahn keeps ~70 attributes in each connection's __dict__ (a 128-slot table,
    1.5 kB); the ~30 that hold their idle value move to the connection's class, which
    makes the table a 64-slot one. Each is read as before, and set on the connection
    again when it changes (a ping timer, a close)."""
    if "_idle_class" in type(protocol).__dict__:
        return  # done already
    idle = _idle_class(type(protocol))
    defaults = idle.__dict__
    kept = {name: value for name, value in protocol.__dict__.items()
            if not (name in defaults and value is defaults[name])}
    protocol.__class__ = idle
    protocol.__dict__ = kept


def trim_after_handshake(protocol, receive):
    """Drop, from an open daphne connection, what only its handshake read: autobahn's
    copy of the raw request and its parsed headers, daphne's header list (the scope's
    `headers`, read by the middlewares before the socket was accepted) and Twisted's HTTP
    request it was upgraded from; replace autobahn's send queue by a SendQueue, and daphne's
    per-connection asyncio.Queue by an Inbox. Returns the receive to use from now on (docs/performance.md)."""
    for name in ("http_request_data", "http_response_data", "http_headers", "http_status_line"):
        if name in protocol.__dict__:
            setattr(protocol, name, None if name != "http_headers" else {})
    request = getattr(protocol, "request", None)
    if request is not None and isinstance(getattr(request, "headers", None), dict):
        request.headers = {}
    headers = getattr(protocol, "clean_headers", None)
    if isinstance(headers, list):
        headers.clear()  # the same list is every scope copy's "headers"
    # Twisted's HTTP channel that daphne upgraded from stays the transport's producer (its
    # pause and resume still apply), and with it the HTTP request it parsed: its headers,
    # cookies and body. Nothing reads them after the upgrade (daphne has forgotten it).
    requests = getattr(getattr(getattr(protocol, "transport", None), "producer", None), "requests", None)
    if isinstance(requests, list):
        requests.clear()
    if isinstance(protocol, _DaphneWebSocket):
        _compact(protocol)
    queued = protocol.__dict__.get("send_queue")
    if type(queued) is collections.deque and not queued:
        protocol.send_queue = SendQueue()
    # daphne only ever calls put_nowait() on its queue (ws_protocol); the consumer is not
    # waiting on it now (it is handling websocket.connect), so nothing is in flight.
    queue = getattr(receive, "__self__", None)
    if (
        type(queue) is asyncio.Queue
        and queue.maxsize <= 0
        and not queue._getters
        and getattr(protocol, "application_queue", None) is queue
    ):
        inbox = Inbox(queue._queue)
        protocol.application_queue = inbox
        return inbox.get
    return receive


def listening_port(send):
    """The Twisted listening port a daphne connection (WebSocket or HTTP) came in on (its
    ``stopReading`` / ``startReading`` pause and resume accepting), or None."""
    protocol = _daphne_connection(send) if _DaphneWebSocket is not None else None
    port = getattr(getattr(protocol, "transport", None), "server", None)
    if hasattr(port, "stopReading") and hasattr(port, "startReading"):
        return port
    return None


def gate_accepts(port, room, accepted) -> bool:
    """Make a Twisted listening port ask before it accepts: each time it is readable it
    accepts at most ``room(port)`` connections (none for 0 or less: room stops the port
    reading) and tells ``accepted(count)`` how many it took. Twisted alone accepts up to
    ``numberAccepts`` at once (100, and 20 more each time it finds that many waiting).
    False (nothing changed) if the port lacks what this uses."""
    if not all(hasattr(port, a) for a in ("doRead", "numberAccepts", "sessionno")):
        return False
    read = port.doRead

    def gated_read() -> None:
        n = room(port)
        if n <= 0:
            return
        port.numberAccepts = min(port.numberAccepts, n)
        before = port.sessionno
        read()
        accepted(port.sessionno - before)

    port.doRead = gated_read
    return True

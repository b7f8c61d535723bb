"""The site's WebSocket stack in one coroutine: load shedding, the Origin check, session or
token authentication, the socket caps and the URL routes, in that order, then the
consumer.

As nested middlewares (realtime.shed, mblog.ws_origin, mblog.ws_auth, mblog.ws_limits,
Channels' URLRouter and each consumer's as_asgi wrapper) every open socket kept a
suspended coroutine of each and three copies of its scope for as long as it was open
(about 2 kB per idle socket, docs/performance.md). Here each check is a step of one
coroutine, and a socket keeps one scope: the authenticated copy, with the route's
`path_remaining` and `url_route` added as URLRouter would. The checks themselves stay in
their modules; their middleware classes remain for other stacks and tests.
"""

from channels.routing import URLRouter

from mblog import ws_auth, ws_origin
from mblog.ws_limits import SocketCapMiddleware
from realtime.shed import LoadShedMiddleware


class WebSocketStack:
    def __init__(self, routes: list, shed: "LoadShedMiddleware | None" = None) -> None:
        self.shed = shed or LoadShedMiddleware()  # the application's, which also sees HTTP
        self.caps = SocketCapMiddleware()
        self.routes = URLRouter(routes).routes  # as URLRouter prepares them

    async def __call__(self, scope, receive, send):
        watched = self.shed.admit(send)
        if watched is None:
            return await self.shed.turn_away(receive, send)
        try:
            send = watched.send  # realtime.wire finds daphne's connection behind it
            if not ws_origin.allowed(scope):
                return await ws_origin.refuse(receive, send)
            scope = await ws_auth.authenticate(scope, receive, send)
            if scope is None:
                return None
            held = self.caps.take(scope)
            if isinstance(held, str):
                return await self.caps.refuse(receive, send, held)
            try:
                app = self.route(scope)
                consumer_class = getattr(app, "consumer_class", None)
                if consumer_class is None:
                    return await app(scope, receive, send)
                # What the consumer's as_asgi() wrapper does, without its coroutine; and this
                # frame lets go of receive, which the consumer replaces under daphne
                # (realtime.wire.trim_after_handshake) so that daphne's queue can go.
                running = consumer_class(**app.consumer_initkwargs)(scope, receive, send)
                scope = receive = send = app = None
                return await running
            finally:
                self.caps.release(held)
        finally:
            watched.done()

    def route(self, scope):
        """The application for this path, with `path_remaining` and `url_route` set in the
        scope as Channels' outermost URLRouter sets them; ValueError when none matches."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and not path.startswith(root_path):
            raise ValueError(f"No route found for path {path!r}.")
        path = path[len(root_path) :].lstrip("/")
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                new_path, args, kwargs = match
                kwargs.update(route.default_args)
                scope["path_remaining"] = new_path  # our own copy of the scope (ws_auth)
                scope["url_route"] = {"args": args, "kwargs": kwargs}
                return route.callback
        raise ValueError(f"No route found for path {path!r}.")

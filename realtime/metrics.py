"""Prometheus metrics of this server process (prometheus_client), served at /metrics to
clients in METRICS_ALLOWED_NETWORKS only; nginx refuses the path publicly and
serves each process's figures on a private listener (deploy/templates/nginx/mblog.conf).

Every process has its own figures (scrape each one; sum in the query): no files shared
between processes, nothing left behind by one that died.
"""

import ipaddress
import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

OPEN_SOCKETS = Gauge("realtime_open_sockets", "Open WebSockets in this process", ["user"])
DELIVERIES = Counter("realtime_deliveries_total", "Frames the hub wrote to local sockets")
MESSAGES = Counter("realtime_layer_messages_total", "Channel-layer messages the hub fanned out")
PUSH_LAG = Histogram(
    "realtime_push_lag_seconds",
    "From the commit (the layer publish after it) to the hub's last local write of that push",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAYER_HEALS = Counter("realtime_layer_heals_total", "Times the hub healed after a layer outage (sockets caught up)")
CLOSES = Counter("realtime_server_closes_total", "Sockets the server closed or refused, by reason", ["reason"])
REJECTED_FRAMES = Counter("realtime_rejected_frames_total", "Client frames answered with an error, by code", ["code"])

for _user in ("signed_in", "anonymous"):
    OPEN_SOCKETS.labels(_user)
for _reason in ("backlog", "abuse", "too_many_sockets", "overloaded"):
    CLOSES.labels(_reason)


def socket_opened(signed_in: bool) -> None:
    OPEN_SOCKETS.labels("signed_in" if signed_in else "anonymous").inc()


def socket_closed(signed_in: bool) -> None:
    OPEN_SOCKETS.labels("signed_in" if signed_in else "anonymous").dec()


def fanned_out(message: dict, sockets: int) -> None:
    MESSAGES.inc()
    DELIVERIES.inc(sockets)
    sent_at = message.get("sent_at")
    if isinstance(sent_at, (int, float)):
        PUSH_LAG.observe(max(0.0, time.time() - sent_at))


def allowed(address: "str | None") -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    """The exposition; a 404 for anyone outside METRICS_ALLOWED_NETWORKS (by the client
    address daphne reports: behind nginx, the real client's)."""
    if not allowed(request.META.get("REMOTE_ADDR")):
        return HttpResponseNotFound()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

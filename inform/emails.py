"""Notifications by email, for the kinds a person chose to get that way. Sent after the
transaction commits (a rolled-back notification is never mailed); a mail server that
fails is logged and never fails the request: the notification is stored either way."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction

from .models import Delivery, InformState

log = logging.getLogger(__name__)


def _message(n, address: str) -> EmailMessage:
    link = n.url if n.url.startswith("http") else settings.INFORM_EMAIL_SITE_URL.rstrip("/") + (n.url or "/inform/")
    body = f"{n.text}\n\n{link}\n\nChoose what reaches you and how: {settings.INFORM_EMAIL_SITE_URL.rstrip('/')}/inform/settings/\n"
    return EmailMessage(subject=f"mblog: {n.text[:70]}", body=body, to=[address])


def _send(messages: list[EmailMessage]) -> None:
    if not messages:
        return
    try:
        get_connection().send_messages(messages)
    except Exception:
        log.exception("could not send %d notification email(s)", len(messages))


def send_after_commit(pairs: list) -> None:
    """Mail each (notification, address) once the transaction commits."""
    if pairs:
        transaction.on_commit(lambda: _send([_message(n, address) for n, address in pairs]))


def send_site_update_after_commit(n) -> None:
    """A site update to everyone who wants site updates by email (read after commit)."""

    def send() -> None:
        addresses = (
            get_user_model()
            .objects.filter(pk__in=InformState.objects.filter(site_update=Delivery.EMAIL).values("user_id"))
            .exclude(email="")
            .values_list("email", flat=True)
        )
        _send([_message(n, a) for a in addresses])

    transaction.on_commit(send)

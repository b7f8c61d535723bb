import json
from functools import cache

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core import signing
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services, webpush
from .forms import AwaySettingsForm
from .models import AwayProfile, PushSubscription
from .preferences import EMAIL_BY_DEFAULT


@login_required
@require_http_methods(["GET", "POST"])
def away_settings(request):
    profile, _ = AwayProfile.objects.get_or_create(user=request.user)
    if request.method == "POST":
        form = AwaySettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            profile.unsubscribed = sorted(EMAIL_BY_DEFAULT - set(data["email_kinds"]))
            profile.time_zone = data["time_zone"]
            profile.quiet_start, profile.quiet_end = data["quiet_start"], data["quiet_end"]
            profile.save(update_fields=["unsubscribed", "time_zone", "quiet_start", "quiet_end"])
            messages.success(request, "Saved.")
            return redirect("away_settings")
    else:
        form = AwaySettingsForm(initial={
            "email_kinds": sorted(EMAIL_BY_DEFAULT - set(profile.unsubscribed)),
            "time_zone": profile.time_zone, "quiet_start": profile.quiet_start, "quiet_end": profile.quiet_end,
        })
    return render(request, "away/settings.html", {
        "form": form, "email": request.user.email,
        "vapid_public_key": settings.VAPID_PUBLIC_KEY if webpush.configured() else "",
    })


# The token is the credential: a mail provider's one-click POST (RFC 8058) carries no
# session and no CSRF token. GET only shows the button, so link scanners unsubscribe nobody.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        user_id, verbs = services.read_unsubscribe_token(token)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return HttpResponseBadRequest("This unsubscribe link is not valid.")
    kinds = [services.KIND_NAMES.get(v, v) for v in verbs]
    done = False
    if request.method == "POST":
        services.unsubscribe(user_id, verbs)
        done = True
    return render(request, "away/unsubscribe.html", {"kinds": kinds, "done": done})


# --- Web Push -------------------------------------------------------------------------


@cache
def _service_worker_source() -> bytes:
    with open(finders.find("away/sw.js"), "rb") as f:
        return f.read()


@require_GET
def service_worker(request):
    """The service worker, from the site's root so that its scope is the whole site (a
    worker under /static/ could only control /static/); same origin, as CSP wants."""
    response = HttpResponse(_service_worker_source(), content_type="application/javascript")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    return response


def _json_body(request) -> dict | None:
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@login_required
@require_POST
def push_subscribe(request):
    """The browser's PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}."""
    body = _json_body(request) or {}
    endpoint, keys = body.get("endpoint"), body.get("keys")
    if not webpush.configured():
        return JsonResponse({"error": "push is not configured on this site"}, status=503)
    if not (isinstance(endpoint, str) and webpush.endpoint_allowed(endpoint) and isinstance(keys, dict)
            and isinstance(keys.get("p256dh"), str) and isinstance(keys.get("auth"), str)
            and 0 < len(keys["p256dh"]) <= 200 and 0 < len(keys["auth"]) <= 100):
        return JsonResponse({"error": "not a push subscription this site can use"}, status=400)
    PushSubscription.objects.update_or_create(
        endpoint=endpoint, defaults={"user": request.user, "p256dh": keys["p256dh"], "auth": keys["auth"]}
    )
    return JsonResponse({"ok": True}, status=201)


@login_required
@require_POST
def push_unsubscribe(request):
    endpoint = (_json_body(request) or {}).get("endpoint")
    deleted, _ = PushSubscription.objects.filter(user=request.user, endpoint=str(endpoint)).delete()
    return JsonResponse({"ok": True, "deleted": deleted})

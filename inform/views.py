import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from realtime.frames import BadFrame
from tokens.middleware import accepts_tokens

from . import frames, selectors, services
from .models import Delivery, Kind, kind_of

MAX_LIMIT = 200


def api_login_required(view):
    """JSON 401 for anonymous API calls, never a login page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "unauthenticated", "detail": "sign in first"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def _bad_request(detail: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": "bad_request" if status == 400 else "not_found", "detail": detail}, status=status)


def _next_or(request, fallback: str) -> str:
    """The form's `next` when it is a path on this site, else fallback."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if safe and target.startswith("/") and not target.startswith("//") else fallback


@login_required
def notification_list(request):
    """Opening the list makes everything on it seen (the badge clears; unread stays)."""
    user = request.user
    request.inform_cursor = selectors.latest_notification_id()  # read before the list (context_processors)
    request.inform_counters = selectors.counters(user)
    if request.inform_counters.unseen:
        services.notifications_mark_seen(user, request.inform_cursor)
        request.inform_counters = None  # changed: the badge reads them again
    page = Paginator(selectors.stream_with_read_state(user).order_by("-id"), 20).get_page(request.GET.get("page"))
    for n in page:
        n.is_read = selectors.is_read(user, n)
    return render(request, "inform/list.html", {"page": page})


@login_required
def preferences_page(request):
    """Per kind: on site, on site and by email, or off; and who and what is muted or
    watched. A plain form: works without JavaScript. A POST may carry any subset of the
    kinds (a notification's "stop" page turns one off)."""
    user = request.user
    if request.method == "POST":
        chosen = {k: request.POST[k] for k in Kind.values if k in request.POST}
        try:
            services.preferences_save(user, chosen)
        except services.InformError as exc:
            return HttpResponseBadRequest(exc.message)
        messages.success(request, "Notification settings saved.")
        return redirect(_next_or(request, reverse("inform_preferences")))
    state = selectors.preferences(user)
    kinds = [(value, label, getattr(state, value)) for value, label in Kind.choices]
    people, topics = selectors.mutes(user)
    return render(
        request,
        "inform/preferences.html",
        {"kinds": kinds, "deliveries": Delivery.choices, "people": people, "topics": topics},
    )


@login_required
@require_POST
def mute_person(request):
    person = get_object_or_404(get_user_model(), username=request.POST.get("username", ""))
    on = request.POST.get("on") == "1"
    try:
        services.person_mute(request.user, person, on=on)
    except services.InformError as exc:
        return HttpResponseBadRequest(exc.message)
    messages.success(request, f"{'Muted' if on else 'Unmuted'} {person.username}.")
    return redirect(_next_or(request, reverse("inform_preferences")))


@login_required
@require_POST
def topic_preference(request):
    try:
        services.topic_set(request.user, request.POST.get("topic", ""), request.POST.get("state", ""))
    except services.InformError as exc:
        return HttpResponseBadRequest(exc.message)
    said = {"watch": "Watching", "mute": "Muted", "": "Back to the default for"}[request.POST.get("state", "")]
    messages.success(request, f"{said} this {request.POST['topic'].split(':')[0]}.")
    return redirect(_next_or(request, reverse("inform_preferences")))


@login_required
@require_GET
def stop_notification(request, pk):
    """"Stop notifying me about this": the ways to silence what this notification came
    from, each a plain form (mute the post or room, mute the person, turn the kind off)."""
    n = selectors.stream(request.user).select_related("actor").filter(pk=pk).first()
    if n is None:
        raise Http404("no such notification")
    kind = kind_of(n.verb, n.topic)
    return render(
        request,
        "inform/stop.html",
        {"n": n, "kind": kind, "kind_label": Kind(kind).label, "topic_kind": n.topic.split(":")[0] if n.topic else ""},
    )


@login_required
@require_GET
def open_notification(request, pk):
    """Where every notification link points (list, toast, menu): mark it read, which
    tells every tab of the user, then go to what it is about."""
    n = selectors.stream(request.user).filter(pk=pk).only("id", "url", "recipient_id").first()
    if n is None:
        raise Http404("no such notification")
    services.notifications_mark_read(request.user, [n.id])
    target = n.url
    if not target or not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("inform_list")
    return redirect(target)


@login_required
@require_POST
def mark_read_form(request):
    """The no-JavaScript path of the list page's buttons."""
    if request.POST.get("all"):
        services.notifications_mark_all_read(request.user)
    else:
        try:
            ids = [int(i) for i in request.POST.getlist("id")]
        except ValueError:
            ids = []
        try:
            services.notifications_mark_read(request.user, ids)
        except services.InformError:
            pass
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    if not (safe and target.startswith(("/", "http://", "https://"))):
        target = reverse("inform_list")  # never another site, never a URL name to look up
    return HttpResponseRedirect(target)


@accepts_tokens
@require_GET
@api_login_required
def api_notifications(request):
    try:
        after = int(request.GET.get("after", 0))
        limit = int(request.GET.get("limit", 50))
    except ValueError:
        return _bad_request("after and limit must be integers")
    if after < 0 or not 1 <= limit <= MAX_LIMIT:
        return _bad_request(f"after must be >= 0 and limit between 1 and {MAX_LIMIT}")
    items = selectors.notifications_after(request.user, after, limit)
    return JsonResponse({"notifications": [frames.inform_frame(n) for n in items]})


@accepts_tokens
@require_GET
@api_login_required
def api_read_state(request):
    """?ids=1,2,3 → which of them are read, and the unread count: how an open list or
    menu brings its items up to date after an `unread` frame (read in another tab)."""
    try:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i]
    except ValueError:
        return _bad_request("ids is a comma-separated list of integers")
    if len(ids) > MAX_LIMIT:
        return _bad_request(f"at most {MAX_LIMIT} ids")
    user = request.user
    rows = selectors.stream_with_read_state(user).filter(id__in=ids) if ids else []
    return JsonResponse({"read": sorted(n.id for n in rows if selectors.is_read(user, n)), **_counters(user)})


@accepts_tokens
@require_GET
@api_login_required
def api_menu(request):
    """The header menu's items: newest unread first, then newest read. `cursor`: the
    menu shows everything up to it (the client marks that seen, /inform/api/seen/)."""
    user = request.user
    cursor = selectors.latest_notification_id()
    items = [
        {
            **frames.inform_frame(n),
            "read": n.is_read,
            "open": reverse("inform_open", args=[n.id]),
            "stop": reverse("inform_stop", args=[n.id]),
        }
        for n in selectors.menu_items(user)
    ]
    return JsonResponse({"items": items, "cursor": cursor, **_counters(user)})


def _counters(user) -> dict:
    return selectors.counters(user)._asdict()


@accepts_tokens
@require_GET
@api_login_required
def api_unread(request):
    return JsonResponse(_counters(request.user))


@accepts_tokens
@require_POST
@api_login_required
def api_seen(request):
    """{"upto": id}: the menu or list showing everything up to id was opened. Answers
    the counters; every tab of the user gets them as an `unread` frame."""
    try:
        upto = int(json.loads(request.body or b"null").get("upto"))
    except (ValueError, TypeError, AttributeError, RecursionError):
        return _bad_request('send {"upto": <id>}')
    if upto < 0:
        return _bad_request("upto must be >= 0")
    services.notifications_mark_seen(request.user, min(upto, selectors.latest_notification_id()))
    return JsonResponse(_counters(request.user))


@accepts_tokens
@require_POST
@api_login_required
def api_read(request):
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, RecursionError):  # json raises RecursionError for deep nesting
        return _bad_request("body is not valid JSON")
    if isinstance(body, dict) and body.get("all") is True:
        services.notifications_mark_all_read(request.user)
        return JsonResponse(_counters(request.user))
    try:
        frame = frames.parse_client_frame(json.dumps({"type": "read", "ids": (body or {}).get("ids")}))
    except (BadFrame, AttributeError) as exc:
        return _bad_request(f'send {{"ids": [..]}} or {{"all": true}} ({exc})')
    try:
        services.notifications_mark_read(request.user, frame["ids"])
        return JsonResponse(_counters(request.user))
    except services.InformError as exc:
        return _bad_request(str(exc), status=404)

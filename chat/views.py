from django.contrib import messages as flash
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from . import frames, selectors, services
from .models import Message

MAX_LIMIT = 200


def _rooms_page(request, *, error=None, name="", status=200):
    return render(
        request, "chat/rooms.html", {"rooms": selectors.rooms_for_list(), "error": error, "name": name}, status=status
    )


def room_list(request):
    """The rooms; POST (the form here) opens a room, creating it if it does not exist yet."""
    error, name = None, ""
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={request.path}")
        name = request.POST.get("name", "")
        try:
            room = services.room_get_or_create(name=name, by=request.user)
        except services.ChatError as exc:
            error = str(exc)
        else:
            return redirect(room)
    return _rooms_page(request, error=error, name=name, status=400 if error else 200)


def _room_name_or_404(name: str) -> str:
    try:
        return services.clean_room_name(name)
    except services.ChatError:
        raise Http404("no such room") from None


def room_detail(request, room):
    name = _room_name_or_404(room)
    if name != room:
        return redirect("chat_room", name)
    # Reading a page changes nothing: a room is created only by the rooms page's form.
    chat_room = selectors.room_by_name(name)
    if chat_room is None:
        return _rooms_page(request, error=f"There is no room #{name} yet; create it here.", name=name, status=404)
    if not request.user.is_authenticated:  # the page asks them to sign in
        return render(request, "chat/room.html", {"name": name, "room": None})
    status = 200
    if request.method == "POST":  # the no-JavaScript way to talk
        try:
            services.chat_message_post(
                room=chat_room, author=request.user, text=request.POST.get("text", ""), budgeted=True
            )
        except services.RateLimited as exc:
            flash.error(request, str(exc))
            status = 429  # the page again, with the message kept out of the log
        except services.ChatError as exc:
            flash.error(request, str(exc))
            return redirect(chat_room)
        else:
            return redirect(chat_room)
    before = request.GET.get("before")
    shown, more = selectors.messages_before(chat_room, int(before) if before and before.isdigit() else None)
    return render(
        request,
        "chat/room.html",
        {
            "name": name,
            "room": chat_room,
            "shown": shown,
            "more": more,
            "paged": bool(before),
            "last_id": shown[-1].id if shown else 0,
            "present": selectors.present_usernames(chat_room),
            "max_length": Message.MAX_LENGTH,
        },
        status=status,
    )


@require_GET
def room_messages(request, room):
    """Older messages for scrolling up: ?before=<id>&limit=<n> (default 50, max 200), oldest first."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "unauthenticated", "detail": "sign in first"}, status=401)
    chat_room = selectors.room_by_name(room)
    if chat_room is None:
        return JsonResponse({"error": "not_found", "detail": "no such room"}, status=404)
    try:
        before = int(request.GET["before"]) if "before" in request.GET else None
        limit = int(request.GET.get("limit", selectors.HISTORY))
    except ValueError:
        return JsonResponse({"error": "bad_request", "detail": "before and limit are integers"}, status=400)
    if not 1 <= limit <= MAX_LIMIT:
        return JsonResponse({"error": "bad_request", "detail": f"limit is 1–{MAX_LIMIT}"}, status=400)
    rows, more = selectors.messages_before(chat_room, before, limit)
    return JsonResponse({"messages": [frames.message_frame(m) for m in rows], "more": more})

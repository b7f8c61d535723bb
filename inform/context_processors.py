from .selectors import latest_stream_id, unread_count


def badge(request) -> dict:
    """What every page's badge shows, right without JavaScript (two indexed queries), and
    the id the page is current to, so the live client syncs from there."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"inform_unread": 0, "inform_last_id": 0}
    return {"inform_unread": unread_count(user), "inform_last_id": latest_stream_id(user)}

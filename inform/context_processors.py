from .selectors import counters, latest_notification_id


def badge(request) -> dict:
    """What every page's badge shows (the unseen count; the unread count goes beside it),
    right without JavaScript (two indexed queries), and the resume point the page is
    current to, so the live client syncs from there."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"inform_unread": 0, "inform_unseen": 0, "inform_last_id": 0, "inform_version": ""}
    # The resume point first: whatever commits after it, the live client syncs.
    cursor = getattr(request, "inform_cursor", None)
    if cursor is None:
        cursor = latest_notification_id()
    c = getattr(request, "inform_counters", None) or counters(user)
    # The counters' version goes with them: the live client keeps whichever is newer.
    return {"inform_last_id": cursor, "inform_unread": c.unread, "inform_unseen": c.unseen,
            "inform_version": f"{c.version[0]},{c.version[1]}"}

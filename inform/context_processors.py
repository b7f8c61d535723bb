from .selectors import latest_notification_id, unread_count


def badge(request) -> dict:
    """What every page's badge shows, right without JavaScript (two indexed queries), and
    the resume point the page is current to, so the live client syncs from there."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"inform_unread": 0, "inform_last_id": 0}
    # The resume point first: whatever commits after it, the live client syncs.
    cursor = getattr(request, "inform_cursor", None)
    if cursor is None:
        cursor = latest_notification_id()
    return {"inform_last_id": cursor, "inform_unread": unread_count(user)}

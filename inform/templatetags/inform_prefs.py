"""What a page needs to show watch / mute buttons (one query each)."""

from django import template

from inform.models import PersonMute, TopicPreference

register = template.Library()


@register.simple_tag
def topic_state(user, topic: str) -> str:
    """"watch", "mute" or "" (the default) for this person and topic."""
    if not user.is_authenticated:
        return ""
    watch = TopicPreference.objects.filter(user=user, topic=topic).values_list("watch", flat=True).first()
    return "" if watch is None else ("watch" if watch else "mute")


@register.simple_tag
def has_muted(user, person) -> bool:
    return user.is_authenticated and PersonMute.objects.filter(user=user, muted=person).exists()

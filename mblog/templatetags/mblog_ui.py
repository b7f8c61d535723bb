"""Small display helpers shared by the templates; static/inform/inform.js mirrors avatar_hue."""

from django import template
from django.urls import reverse
from django.utils.html import escape, linebreaks
from django.utils.safestring import mark_safe

from mblog.services import MENTION

register = template.Library()

HUES = 8


@register.filter
def avatar_hue(name: str | None) -> int:
    """A stable colour class for a person's initial (the same sum inform.js takes)."""
    return sum(map(ord, name or "")) % HUES


@register.filter
def spaced(code: str) -> str:
    """site_update -> "site update", as inform.js writes it live."""
    return (code or "").replace("_", " ")


@register.filter
def initial(name: str | None) -> str:
    return (name or "·")[:1].upper()


@register.filter(needs_autoescape=True)
def with_mentions(text: str, known_names, autoescape=True) -> str:
    """Paragraphs of text, escaped, with @name a link to the profile of each known user."""
    known = set(known_names or ())

    def link(m):
        name = m.group(1).rstrip(".")
        if name not in known:
            return escape(m.group(0))
        rest = m.group(1)[len(name):]
        return f'<a class="mention" href="{escape(reverse("profile", args=[name]))}">@{escape(name)}</a>{escape(rest)}'

    parts, last = [], 0
    for m in MENTION.finditer(text):
        parts.append(escape(text[last : m.start()]))
        parts.append(link(m))
        last = m.end()
    parts.append(escape(text[last:]))
    return mark_safe(linebreaks("".join(parts), autoescape=False))

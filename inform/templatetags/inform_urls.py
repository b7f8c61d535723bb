from django import template

from inform.services import url_is_safe

register = template.Library()


@register.filter
def safe_href(url: str) -> str:
    """The URL if a click on it cannot run script (inform.services.url_is_safe), else "#"."""
    return url if url_is_safe(url) else "#"

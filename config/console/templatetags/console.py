"""Small template helpers for the console's pages."""

from django import template
from django.utils.html import format_html

from accounts.admin import account_status_html
from accounts.admin_tools import duration_words

register = template.Library()


@register.filter
def lookup(mapping, key):
    """``mapping|lookup:key``: a dict's value in a template."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        return None


@register.filter
def account_status(account) -> str:
    return account_status_html(account)


@register.simple_tag
def figure_link(figure, element_id: str = "", suffix="") -> str:
    """A figure, linked to the list behind it when there is one the person may open."""
    if figure is None:
        return "0"
    value = f"{figure.value:,}"
    ident = f"{element_id}-{suffix}" if element_id and suffix != "" else element_id
    if figure.link:
        if ident:
            return format_html('<a href="{}" id="{}">{}</a>', figure.link, ident, value)
        return format_html('<a href="{}">{}</a>', figure.link, value)
    if ident:
        return format_html('<span id="{}">{}</span>', ident, value)
    return value


@register.filter
def duration(seconds) -> str:
    """Seconds (or None) as a person reads them: 6 ms, 1.2 s, 4 min."""
    if seconds in (None, ""):
        return "-"
    return duration_words(float(seconds))


@register.filter
def milliseconds(value) -> str:
    if value in (None, ""):
        return "-"
    return duration_words(float(value) / 1000)

"""The Content-Security-Policy of the console's pages (Django 5.2 has none built in).

One header on every HTML response: scripts, styles and images come from the app itself,
nothing frames the console, and forms post only to the app and to Meta's login dialogs (the
"Connect" form redirects there, and browsers hold that redirect to ``form-action``).
"""

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy() -> str:
    """The header's value, from settings.CONTENT_SECURITY_POLICY and Meta's login bases."""
    directives = {name: list(values) for name, values in settings.CONTENT_SECURITY_POLICY.items()}
    oauth_origins = {
        _origin(url) for url in (settings.META_OAUTH_URL, settings.INSTAGRAM_OAUTH_URL)
    } - {""}
    directives.setdefault("form-action", ["'self'", *sorted(oauth_origins)])
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response and response.get("Content-Type", "").startswith("text/html"):
            response[HEADER] = content_security_policy()
        return response

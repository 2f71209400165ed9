"""The tracked-link redirect (/l/<token>): the person goes on at once; the click is counted
after the answer has left (``close()``, which the server calls once the response is sent), so
a slow database never holds the redirect up."""

import logging

from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.views.decorators.http import require_safe

from messaging import links

logger = logging.getLogger(__name__)


class _CountedRedirect(HttpResponseRedirect):
    def __init__(self, target: links.LinkTarget, count: bool) -> None:
        super().__init__(target.url)
        self._target = target
        self._count = count
        self["Cache-Control"] = "no-store"
        self["Referrer-Policy"] = "no-referrer"

    def close(self) -> None:
        super().close()
        if self._count:
            self._count = False
            try:
                links.link_click_record(self._target)
            except Exception:
                logger.exception("Could not count a click on delivery %s", self._target.delivery_id)


@require_safe
def link_redirect(request: HttpRequest, token: str) -> HttpResponseRedirect:
    target = links.link_target(token)
    if target is None:
        raise Http404("This link does not exist.")
    counted = request.method == "GET" and not links.is_link_preview(
        request.headers.get("User-Agent", "")
    )
    return _CountedRedirect(target, counted)

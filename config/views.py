from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from config.health import health_report


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, report = health_report()
    return JsonResponse(report, status=200 if healthy else 503)


@require_GET
def livez(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers; touches no dependency (also the benchmark's baseline)."""
    return HttpResponse("ok", content_type="text/plain")


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    """A refused console page inside the console's chrome, saying why and with a way back;
    anything else gets Django's plain 403."""
    from django.contrib import admin
    from django.template.response import TemplateResponse
    from django.utils.http import url_has_allowed_host_and_scheme
    from django.views import defaults

    user = getattr(request, "user", None)
    if not (request.path.startswith("/admin/") and user is not None and user.is_authenticated):
        return defaults.permission_denied(request, exception)
    from accounts.models import Membership, Role

    back = request.headers.get("Referer", "")
    if (
        not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        or back == request.build_absolute_uri()
    ):
        back = ""
    # The person's roles, counted (no workspace named: a refused page never names anything).
    roles: dict[str, int] = {}
    for role in Membership.objects.filter(user=user).values_list("role", flat=True):
        roles[role] = roles.get(role, 0) + 1
    labels = dict(Role.choices)
    context = {
        **admin.site.each_context(request),
        "title": "This page is not open to you",
        "subtitle": None,
        "roles": [
            f"{labels[role].lower()} in {n} workspace{'s' if n != 1 else ''}"
            for role, n in sorted(roles.items())
        ],
        "back": back,
    }
    response = TemplateResponse(request, "admin/console/refused.html", context, status=403)
    return response.render()

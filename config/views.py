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

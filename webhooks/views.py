"""Meta's webhook endpoint: verify, store, answer. No Graph call, no matching here."""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from meta.signatures import verify_signature
from webhooks import services

logger = logging.getLogger(__name__)


def _signing_secrets() -> list[str]:
    # Instagram-Login apps may sign with the Instagram app secret: accept either.
    return [settings.META_APP_SECRET, settings.INSTAGRAM_APP_SECRET]


@csrf_exempt
@require_http_methods(["GET", "POST"])
def instagram_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    raw_body = request.body
    if not verify_signature(
        raw_body, request.headers.get("X-Hub-Signature-256"), _signing_secrets()
    ):
        logger.warning(
            "Webhook with a missing or wrong signature from %s", request.META.get("REMOTE_ADDR")
        )
        return HttpResponseForbidden("Invalid signature.")
    try:
        intake = services.webhook_event_receive(raw_body=raw_body)
    except services.InvalidWebhookBody as exc:
        services.webhook_event_reject(raw_body=raw_body, error=str(exc))
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return HttpResponse("duplicate" if intake.duplicate else "ok", content_type="text/plain")


def _handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode == "subscribe" and token and token == settings.META_VERIFY_TOKEN:
        return HttpResponse(challenge, content_type="text/plain")
    return HttpResponseForbidden("Verification failed.")

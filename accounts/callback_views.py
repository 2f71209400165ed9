"""Meta's callbacks: deauthorize and data deletion (URLs registered in Meta's app dashboard).

Meta POSTs them from its servers, so they are exempt from CSRF; the ``signed_request``
(HMAC-SHA256 with our app secret) is what proves they come from Meta. A missing or bad one
is answered 400 with a JSON error, changes nothing and is logged.
"""

import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts import callbacks
from accounts.models import DataDeletionRequest

logger = logging.getLogger(__name__)


def _refused(request: HttpRequest, which: str, exc: callbacks.CallbackError) -> JsonResponse:
    # The signed_request itself is never logged: it is a credential-like blob.
    logger.warning(
        "Refused Meta %s callback from %s: %s", which, request.META.get("REMOTE_ADDR"), exc
    )
    return JsonResponse({"error": str(exc)}, status=400)


@csrf_exempt
@require_POST
def deauthorize(request: HttpRequest) -> HttpResponse:
    try:
        user_id = callbacks.callback_user_id(request.POST.get("signed_request", ""))
    except callbacks.CallbackError as exc:
        return _refused(request, "deauthorize", exc)
    callbacks.meta_deauthorize(user_id=user_id)
    # Meta reads nothing from this answer; the record is in the admin (data deletion requests).
    return JsonResponse({"success": True})


@csrf_exempt
@require_POST
def data_deletion(request: HttpRequest) -> HttpResponse:
    try:
        user_id = callbacks.callback_user_id(request.POST.get("signed_request", ""))
    except callbacks.CallbackError as exc:
        return _refused(request, "data deletion", exc)
    record = callbacks.meta_data_deletion(user_id=user_id)
    code = record.confirmation_code
    url = request.build_absolute_uri(reverse("meta_data_deletion_status", args=[code]))
    # Exactly the two keys Meta reads; it shows the person the URL and the code.
    return JsonResponse({"url": url, "confirmation_code": code})


@require_GET
def data_deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    """Public (Meta links the person here): the code, when, and the status; nothing personal."""
    record = DataDeletionRequest.objects.filter(
        confirmation_code=code, source=callbacks.SOURCE_DATA_DELETION
    ).first()
    if record is None:
        raise Http404("No data deletion request has this confirmation code.")
    context = {"record": record, "percent_done": callbacks.data_deletion_share_done(record)}
    return render(request, "accounts/data_deletion_status.html", context)

"""Reads for accounts."""

from django.db.models import Q, QuerySet

from accounts.models import InstagramAccount


def account_for_instagram_id(instagram_id: str) -> InstagramAccount | None:
    """The connected account a webhook entry names, by its id or its alternate id."""
    if not instagram_id:
        return None
    return (
        InstagramAccount.objects.select_related("workspace")
        .filter(Q(ig_user_id=instagram_id) | Q(ig_alt_id=instagram_id))
        .first()
    )


def account_by_reference(reference: str) -> InstagramAccount | None:
    """An account by username (with or without @) or Instagram user id."""
    reference = reference.strip().lstrip("@")
    return (
        InstagramAccount.objects.select_related("workspace")
        .filter(Q(username__iexact=reference) | Q(ig_user_id=reference))
        .first()
    )


def accounts_named(instagram_ids: list[str]) -> QuerySet[InstagramAccount]:
    """The connected accounts a webhook body names (entry ids, by id or alternate id)."""
    return InstagramAccount.objects.filter(
        Q(ig_user_id__in=instagram_ids) | Q(ig_alt_id__in=instagram_ids)
    )


def accounts_for_instagram_ids(instagram_ids: list[str]) -> list[InstagramAccount]:
    """``accounts_named``, read."""
    return list(accounts_named(instagram_ids))

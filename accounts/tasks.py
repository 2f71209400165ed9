"""Thin Celery tasks for token upkeep: beat's runs fan out one task per account.

One task per account keeps each one to a single call to Meta (well inside the task time
limit whatever the number of accounts), and a failure stays with its account. Every task
is safe to run twice: a refresh checks again that it is due, a check only records Meta's answer.
"""

from celery import shared_task

from accounts import tokens


@shared_task(name="accounts.refresh_tokens")
def refresh_tokens() -> int:
    """Beat: queue a refresh for every Instagram-Login token that is due."""
    due = tokens.accounts_due_for_refresh()
    for account_id in due:
        refresh_token.delay(account_id)
    return len(due)


@shared_task(name="accounts.refresh_token", acks_late=True, reject_on_worker_lost=True)
def refresh_token(account_id: int) -> str:
    return tokens.account_token_refresh(account_id=account_id).result


@shared_task(name="accounts.check_tokens")
def check_tokens() -> int:
    """Beat, daily: queue a token and permission check for every account not disabled."""
    account_ids = tokens.accounts_to_check()
    for account_id in account_ids:
        check_token.delay(account_id)
    return len(account_ids)


@shared_task(name="accounts.check_token", acks_late=True, reject_on_worker_lost=True)
def check_token(account_id: int) -> str:
    return tokens.account_token_check(account_id=account_id).result


@shared_task(name="accounts.run_data_deletion", acks_late=True, reject_on_worker_lost=True)
def run_data_deletion(record_id: int) -> str:
    """Work a data deletion request on for a bounded time (it queues its own next run)."""
    from accounts import callbacks

    return callbacks.data_deletion_run(record_id=record_id)


@shared_task(name="accounts.sweep")
def sweep() -> dict:
    """Beat: forget expired pending connections; resume data deletions whose task was lost."""
    from accounts import callbacks, connecting

    return {
        "pending_connections_deleted": connecting.pending_connections_sweep(),
        "data_deletions_resumed": callbacks.data_deletions_resume(),
    }

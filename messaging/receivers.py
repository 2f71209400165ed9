from accounts.models import InstagramAccount


def release_held_sends(sender, account: InstagramAccount, **kwargs) -> None:
    from messaging.services import account_release

    account_release(account_id=account.pk)

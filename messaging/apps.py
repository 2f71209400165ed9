from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from accounts.signals import account_reconnected
        from messaging.receivers import release_held_sends

        account_reconnected.connect(release_held_sends, dispatch_uid="release_held_sends")

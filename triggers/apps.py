from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from messaging.signals import delivery_finished, delivery_retried
        from triggers import flows
        from triggers.models import Trigger
        from triggers.selectors import intent_account_ids_forget

        def _on_delivery_finished(sender, delivery, **kwargs) -> None:
            flows.flow_delivery_settled(delivery=delivery)

        def _on_delivery_retried(sender, delivery, **kwargs) -> None:
            flows.flow_delivery_retried(delivery=delivery)

        delivery_finished.connect(
            _on_delivery_finished, dispatch_uid="triggers.flows.delivery_finished", weak=False
        )
        delivery_retried.connect(
            _on_delivery_retried, dispatch_uid="triggers.flows.delivery_retried", weak=False
        )

        # Intake routing's list of intent accounts: this process reads it again at once; other
        # processes within INTENT_ROUTING_REFRESH_SECONDS (bulk updates rely on that alone).
        def _on_trigger_changed(sender, **kwargs) -> None:
            intent_account_ids_forget()

        for signal in (post_save, post_delete):
            signal.connect(
                _on_trigger_changed,
                sender=Trigger,
                dispatch_uid=f"triggers.intent_routing.{signal is post_save}",
                weak=False,
            )

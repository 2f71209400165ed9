from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from messaging.signals import delivery_finished, delivery_retried
        from triggers import flows

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

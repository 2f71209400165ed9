from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from messaging.signals import delivery_finished
        from triggers import flows

        def _on_delivery_finished(sender, delivery, **kwargs) -> None:
            flows.flow_delivery_settled(delivery=delivery)

        delivery_finished.connect(
            _on_delivery_finished, dispatch_uid="triggers.flows.delivery_finished", weak=False
        )

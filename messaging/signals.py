"""Signals other apps listen to, so messaging never imports them (data flows one way)."""

from django.dispatch import Signal

# Sent after commit when a delivery reaches a final status; kwargs: delivery.
delivery_finished = Signal()

# Sent after commit when an operator queues a finished delivery again (messaging.actions);
# kwargs: delivery. A flow that stopped on it waits for it again.
delivery_retried = Signal()

"""Signals other apps listen to, so messaging never imports them (data flows one way)."""

from django.dispatch import Signal

# Sent after commit when a delivery reaches a final status; kwargs: delivery.
delivery_finished = Signal()

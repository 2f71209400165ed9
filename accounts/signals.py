"""Signals the base app sends so apps above it can react without being imported here."""

from django.dispatch import Signal

# Sent with `account` when a connected account is (re)connected and active again.
account_reconnected = Signal()

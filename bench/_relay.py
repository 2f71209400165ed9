"""The outbox relay alone, for bench/intake.py when no worker runs (in production it is a
thread of every worker and of beat): publishes stored webhook events until SIGTERM."""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import django

django.setup()

from webhooks.relay import Relay  # noqa: E402

relay = Relay(name="bench")
signal.signal(signal.SIGTERM, lambda *_: relay.stop())
relay.run()

"""A local stand-in of Meta's Graph API for tests, the local demo and benchmarks.

It answers the endpoints the product calls (comment replies, private replies, Send API, sender
actions, /me, user profiles, subscribed_apps) the way Meta does, logs every request it received,
and can be told to fail in Meta's ways through its control API under ``/_standin/``. See
docs/standin.md.

    from meta.standin import StandIn, StandInControl

    with StandIn(port=0) as standin:
        control = StandInControl(standin.url)
        ...
"""

from .client import StandInControl
from .server import StandIn
from .state import State

__all__ = ["StandIn", "StandInControl", "State"]

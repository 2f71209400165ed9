"""A local stand-in of Meta's Graph API for tests, the local demo and benchmarks.

It answers the endpoints the product calls (comment replies, private replies, Send API, sender
actions, /me, user profiles, subscribed_apps, and both OAuth logins with their consent pages,
token exchanges, /me/accounts and debug_token) the way Meta does, logs every request it received,
and can be told to fail in Meta's ways through its control API under ``/_standin/``. One port
plays every Meta host, told apart by a path prefix (``/ig``, ``/instagram``, ``/instagram-api``).
See docs/standin.md.

    from meta.standin import StandIn, StandInControl

    with StandIn(port=0) as standin:
        control = StandInControl(standin.url)
        ...
"""

from .client import StandInControl
from .server import StandIn
from .state import State

__all__ = ["StandIn", "StandInControl", "State"]

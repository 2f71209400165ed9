"""``python -m meta.standin --host 127.0.0.1 --port 8001 [--log-file PATH]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .logins import DEFAULT_APPS, FACEBOOK, INSTAGRAM
from .server import StandIn
from .state import State


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meta.standin", description="Local stand-in of Meta's Graph API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--log-file", help="append every received request here as JSON lines")
    parser.add_argument(
        "--send-per-second", type=int, help="start with this Send API limit per account"
    )
    parser.add_argument(
        "--private-replies-per-hour", type=int, help="start with this private reply budget"
    )
    parser.add_argument("--app-id", help="Facebook app id the OAuth endpoints accept")
    parser.add_argument("--app-secret", help="its secret")
    parser.add_argument("--instagram-app-id", help="Instagram app id for Instagram Login")
    parser.add_argument("--instagram-app-secret", help="its secret")
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="OAuth dialogs redirect at once instead of showing the consent page",
    )
    args = parser.parse_args(argv)

    apps = dict(DEFAULT_APPS)
    for login, app_id, secret in (
        (FACEBOOK, args.app_id, args.app_secret),
        (INSTAGRAM, args.instagram_app_id, args.instagram_app_secret),
    ):
        default_id, default_secret, name = apps[login]
        apps[login] = (app_id or default_id, secret or default_secret, name)
    # Kept across POST /_standin/reset, like the command line's intent.
    state = State(
        log_path=args.log_file,
        default_apps=apps,
        default_consent="approve" if args.auto_approve else "ask",
    )
    standin = StandIn(host=args.host, port=args.port, state=state)
    standin.state.limits.send_per_second = args.send_per_second
    standin.state.limits.private_replies_per_hour = args.private_replies_per_hour

    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    standin.start()
    print(
        f"Meta Graph API stand-in listening on {standin.url} "
        f"(requests page: {standin.url}/_standin/)",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

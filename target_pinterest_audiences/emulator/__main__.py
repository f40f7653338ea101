"""``python -m target_pinterest_audiences.emulator``: serve the emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .options import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SIXTY_DAYS,
)
from .server import PinterestEmulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pinterest-emulator", description="Local Pinterest API v5 emulator."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--page-size", type=int, default=2)
    p.add_argument("--min-audience-size", type=int, default=0)
    p.add_argument(
        "--access-token",
        action="append",
        default=None,
        help=f"initially valid access token (repeatable; default {DEFAULT_ACCESS_TOKEN})",
    )
    p.add_argument(
        "--refresh-token",
        action="append",
        default=None,
        help=f"initially valid refresh token (repeatable; default {DEFAULT_REFRESH_TOKEN})",
    )
    p.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    p.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    p.add_argument("--refresh-token-expires-in", type=int, default=SIXTY_DAYS)
    p.add_argument(
        "--token-lifetime",
        type=int,
        default=None,
        help="access tokens expire after this many successful calls",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="load state from here on start (if present), save it here on exit",
    )
    p.add_argument("--log-level", default="WARNING")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    emulator = PinterestEmulator(
        args.host,
        args.port,
        page_size=args.page_size,
        min_audience_size=args.min_audience_size,
        access_tokens=set(args.access_token) if args.access_token else None,
        refresh_tokens=set(args.refresh_token) if args.refresh_token else None,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token_expires_in=args.refresh_token_expires_in,
        token_lifetime=args.token_lifetime,
        latency=args.latency,
    )
    state_file: Path | None = args.state_file
    if state_file is not None and state_file.exists():
        emulator.load_state_file(state_file)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.start()
    print(f"pinterest-emulator listening on {emulator.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        if state_file is not None:
            emulator.save_state_file(state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

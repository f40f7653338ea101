"""``pinterest-emulator`` (``python -m target_pinterest_audiences.emulator``): serve the
emulator until SIGTERM/SIGINT. Its option flags are built from ``Options``, so the command
and the class have the same defaults."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .control import describe_routes
from .options import (
    ALIASES,
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_AD_ACCOUNT,
    DEFAULT_CLIENT_ID,
    DEFAULT_REFRESH_TOKEN,
    option_fields,
    option_flag,
    shown_default,
)
from .server import PinterestEmulator

_EPILOG = f"""\
The initial tokens are {DEFAULT_ACCESS_TOKEN!r} (access) and {DEFAULT_REFRESH_TOKEN!r}
(refresh), for the app {DEFAULT_CLIENT_ID!r}; their scopes are --scope, the ad accounts they
may use --ad-account ({DEFAULT_AD_ACCOUNT} unless given; lists and audiences are kept per ad
account). Every request and answer is checked against Pinterest's OpenAPI file; GET
/_emulator/state lists the departures. A list's
`exceptions` count the records it could not use by code, never quoting one: 1001, not a
SHA-256/SHA-1/MD5 hash or an email address; 1002 (or the code given), declared unusable.

control endpoints (JSON bodies):
{describe_routes()}
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pinterest-emulator",
        description="Local Pinterest API v5 emulator: customer lists, audiences, OAuth.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
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
    p.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="load state from here on start (if present), save it here on exit",
    )
    p.add_argument("--log-level", default="WARNING")
    options = p.add_argument_group("behaviour (also settable at run time: POST /_emulator/config)")
    for spec in option_fields():
        kind = str(spec.type)
        help_text = f"{spec.metadata['help']} (default: {shown_default(spec)})"
        # SUPPRESS: an option not given is not passed, so the class's default applies
        if kind.startswith("bool"):
            options.add_argument(
                option_flag(spec),
                action=argparse.BooleanOptionalAction,
                dest=spec.name,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif kind.startswith("tuple"):
            options.add_argument(
                option_flag(spec),
                action="append",
                dest=spec.name,
                default=argparse.SUPPRESS,
                metavar="ID",
                help=help_text,
            )
        else:
            value_type = int if kind.startswith("int") else float if "float" in kind else str
            options.add_argument(
                option_flag(spec),
                type=value_type,
                dest=spec.name,
                default=argparse.SUPPRESS,
                choices=spec.metadata["choices"] or None,
                help=help_text,
            )
    for alias, name in ALIASES.items():
        options.add_argument(
            _flag(alias), dest=name, type=int, default=argparse.SUPPRESS, help=f"= {_flag(name)}"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    access, refresh = args.pop("access_token"), args.pop("refresh_token")
    state_file: Path | None = args.pop("state_file")
    logging.basicConfig(level=args.pop("log_level").upper(), stream=sys.stderr)
    emulator = PinterestEmulator(
        host,
        port,
        access_tokens=set(access) if access else None,
        refresh_tokens=set(refresh) if refresh else None,
        **args,
    )
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

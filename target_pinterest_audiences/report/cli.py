"""`pinterest-audiences-report`: read the loader's settings and its run history, print a report.

    pinterest-audiences-report --config FILE [--format text|json|html] [--out FILE]
                               [--stream NAME]...

Run where the loader runs: the history is in `ledger_url`, else in the SQLite file of
`.target-pinterest-audiences/` under the working directory. `--config ENV` reads the settings
from the environment as the target does (`TARGET_PINTEREST_AUDIENCES_LEDGER_URL`): that is how
Meltano's `meltano invoke target-pinterest-audiences:report` hands them over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing as t
from pathlib import Path

ENV_PREFIX = "TARGET_PINTEREST_AUDIENCES_"
FORMATS = ("text", "json", "html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinterest-audiences-report",
        description=(
            "Report the run history of target-pinterest-audiences: each stream's runs, what "
            "they sent and what Pinterest made of it. Run it in the loader's working directory."
        ),
    )
    parser.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="the loader's config file (for ledger_url); ENV: from TARGET_PINTEREST_AUDIENCES_* "
        "environment variables. Repeatable, later files win.",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.add_argument(
        "--stream", action="append", metavar="NAME", help="only this stream (repeatable)"
    )
    return parser


def ledger_url(configs: list[str] | None, environ: t.Mapping[str, str]) -> str | None:
    """The `ledger_url` the loader's settings name (None: the default SQLite file)."""
    config: dict[str, t.Any] = {}
    for source in configs or []:
        if source == "ENV":
            value = environ.get(f"{ENV_PREFIX}LEDGER_URL")
            if value:
                config["ledger_url"] = value
            continue
        path = Path(source)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SystemExit(_usage(f"--config {source}: no such file")) from None
        except (OSError, ValueError) as error:
            raise SystemExit(_usage(f"--config {source}: not a JSON config ({error})")) from None
        if not isinstance(loaded, dict):
            raise SystemExit(_usage(f"--config {source}: expected a JSON object"))
        config.update(loaded)
    value = config.get("ledger_url")
    return str(value) if value else None


def _usage(message: str) -> str:
    return f"pinterest-audiences-report: {message}"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    url = ledger_url(args.config, os.environ)
    from target_pinterest_audiences.ledger import LedgerError
    from target_pinterest_audiences.ledger.history import read_history
    from target_pinterest_audiences.report.data import as_json, by_stream

    cwd = Path.cwd()
    try:
        runs = read_history(url, base_dir=cwd, streams=args.stream)
        where = _where(url, cwd)
    except LedgerError as error:
        print(_usage(str(error)), file=sys.stderr)
        raise SystemExit(1) from None
    streams = by_stream(runs)
    if args.format == "json":
        text = json.dumps(as_json(streams), indent=2) + "\n"
    elif args.format == "html":
        text = _html(streams, where)
    else:
        from target_pinterest_audiences.report.text import render_text

        text = render_text(streams, where)
    if args.out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"Wrote the {args.format} report to {args.out}.", file=sys.stderr)


def _where(url: str | None, cwd: Path) -> str:
    """Where the history was read, for people (never a password)."""
    from target_pinterest_audiences.ledger.url import (
        default_location,
        describe_url,
        parse_ledger_url,
    )

    if url is None:
        path = default_location(cwd)
        try:
            return str(path.relative_to(cwd))
        except ValueError:  # pragma: no cover
            return str(path)
    return describe_url(parse_ledger_url(url, cwd))


def _html(streams: t.Any, where: str) -> str:
    try:
        from target_pinterest_audiences.report.html import render_html

        return render_html(streams, where)
    except ModuleNotFoundError as error:
        if error.name not in ("pygal", "jinja2", "markupsafe"):
            raise
        print(
            _usage(
                f"--format html needs {error.name}, which this installation lacks; install "
                "the package with its dependencies: pip install target-pinterest-audiences"
            ),
            file=sys.stderr,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()

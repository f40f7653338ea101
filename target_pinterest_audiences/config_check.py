"""The target's own settings checked in words a person reads, before the SDK's schema check.

The SDK words a bad setting as a JSON-schema error (`549755885175 is not of type 'string'`,
`'act_1' does not match '^\\d+$'`). Each rule here says which setting (and, in `streams`, which
stream and key) is wrong and what is expected instead. Secrets are never quoted; other values
are, since they are the user's own configuration. Pure: no SDK, no I/O.
"""

from __future__ import annotations

import re
import typing as t
from decimal import Decimal

from target_pinterest_audiences.settings import (
    LOOKALIKE_KEYS,
    LOOKALIKE_PERCENTAGES,
    SECRET_SETTINGS,
    STREAM_SETTINGS,
)

_DIGITS = re.compile(r"\d+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_LIST_TYPES = ("EMAIL", "IDFA", "MAID")
_AD_ACCOUNT = (
    "expected the ad account id, digits only, as in the Ads Manager URL "
    "(ads.pinterest.com/advertiser/549755885175/...)"
)

Check = t.Callable[[str, object], "str | None"]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def ad_account_id(name: str, value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None  # digits unquoted in YAML arrive as a number: the same account
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return None
    if isinstance(value, str) and value.lower().startswith("act_"):
        rest = _show(value[4:])
        return f"{name}: {_AD_ACCOUNT}; drop the 'act_' prefix ({rest} if the rest is it)"
    return f"{name}: {_AD_ACCOUNT}; got {_show(value)}"


def text(*, secret: bool = False, allow_number: bool = False, empty: bool = True) -> Check:
    def check(name: str, value: object) -> str | None:
        if isinstance(value, str) and (empty or value.strip()):
            return None
        if allow_number and isinstance(value, int) and not isinstance(value, bool):
            return None
        if secret:
            return f"{name} must be a string (its value is not shown)"
        if isinstance(value, str):
            return f"{name}: must not be empty"
        return f"{name}: expected a string, got {_kind(value)} {_show(value)}"

    return check


def url(name: str, value: object) -> str | None:
    if isinstance(value, str) and re.match(r"https?://[^/\s]+", value):
        return None
    return (
        f"{name}: expected an http(s) URL such as https://api.pinterest.com/v5, got {_show(value)}"
    )


def choice(*options: str) -> Check:
    def check(name: str, value: object) -> str | None:
        if value in options:
            return None
        hint = ""
        if isinstance(value, str) and value.strip().lower() in {o.lower() for o in options}:
            hint = " (mind the case and spaces)"
        listed = " or ".join(repr(o) for o in options)
        return f"{name}: expected {listed}, got {_show(value)}{hint}"

    return check


def integer(low: int, high: int | None = None) -> Check:
    def check(name: str, value: object) -> str | None:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if whole and value >= low and (high is None or value <= high):  # type: ignore[operator]
            return None
        span = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
        return f"{name}: expected a whole number {span}, got {_show(value)}"

    return check


def fraction(name: str, value: object) -> str | None:
    # The SDK reads a config file's decimals as Decimal.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and 0 <= value <= 1:
        return None
    return (
        f"{name}: expected a number from 0 to 1 (0.5: refuse removing more than half of a "
        f"list; 1: no guard), got {_show(value)}"
    )


def boolean(name: str, value: object) -> str | None:
    if isinstance(value, bool):
        return None
    return f"{name}: expected true or false, got {_show(value)}"


def lookalikes(name: str, value: object) -> str | None:
    """A list of {country, percentage, name}: each problem named by its entry and rule."""
    example = '[{"country": "US", "percentage": 5}, {"country": "CA", "percentage": 1}]'
    if not isinstance(value, list):
        return f"{name}: expected a list of lookalikes, as in {example}; got {_kind(value)}"
    problems: list[str] = []
    seen: dict[tuple[object, object], int] = {}
    for number, entry in enumerate(value, start=1):
        where = f"{name} entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object such as {{\"country\": \"US\", "
                            f"\"percentage\": 5}}, got {_kind(entry)}")  # fmt: skip
            continue
        country, percentage = entry.get("country"), entry.get("percentage")
        where = f"{where} ({_show(country)}, {_show(percentage)})"
        for key in entry:
            if key not in LOOKALIKE_KEYS:
                problems.append(
                    f"{where}: {key!r} is not a lookalike key; an entry may set "
                    f"{', '.join(LOOKALIKE_KEYS)}"
                )
        if not (isinstance(country, str) and _COUNTRY.fullmatch(country)):
            problems.append(
                f"{where}: country: expected a two-letter country code in capitals, such as "
                f"'US' (Pinterest names US, CA and GB), got {_show(country)}"
            )
        whole = isinstance(percentage, int) and not isinstance(percentage, bool)
        if not (whole and percentage in LOOKALIKE_PERCENTAGES):
            problems.append(
                f"{where}: percentage: expected a whole number from 1 to 10 (the share of the "
                f"country's Pinterest users to reach), got {_show(percentage)}"
            )
        label = entry.get("name")
        if label is not None and not (isinstance(label, str) and label.strip()):
            problems.append(f"{where}: name: expected a non-empty string, got {_show(label)}")
        key_pair = (country, percentage)
        if key_pair in seen:
            problems.append(
                f"{where}: the same country and percentage as entry {seen[key_pair]}; each "
                "lookalike of a stream needs its own country or percentage"
            )
        else:
            seen[key_pair] = number
    return "\n".join(problems) or None  # one line per problem


# What each per-stream key may hold (the `streams` setting).
STREAM_RULES: dict[str, Check] = {
    "ad_account_id": ad_account_id,
    "audience_name": text(empty=False),
    "audience_description": text(),
    "list_type": choice(*_LIST_TYPES),
    "sync_mode": choice("explicit", "mirror"),
    "max_removal_fraction": fraction,
    "lookalikes": lookalikes,
}
assert tuple(STREAM_RULES) == STREAM_SETTINGS


def streams(name: str, value: object) -> list[str]:
    example = '{"my_stream": {"audience_name": "Holiday shoppers", "sync_mode": "mirror"}}'
    if not isinstance(value, dict):
        return [
            f"{name}: expected an object of per-stream settings keyed by stream name, as in "
            f"{example}; got {_kind(value)}"
        ]
    errors: list[str] = []
    for stream, settings in value.items():
        where = f"{name}: stream '{stream}'"
        if not isinstance(settings, dict):
            errors.append(
                f"{where}: expected an object of that stream's settings, got {_kind(settings)}"
            )
            continue
        for key, setting in settings.items():
            rule = STREAM_RULES.get(key)
            if rule is None:
                errors.append(
                    f"{where}: {key!r} is not a per-stream setting; a stream may set "
                    f"{', '.join(STREAM_SETTINGS)}"
                )
            elif setting is not None and (problem := rule(key, setting)) is not None:
                errors.extend(f"{where}: {line}" for line in problem.splitlines())
    return errors


RULES: dict[str, Check] = {
    "ad_account_id": ad_account_id,
    "access_token": text(secret=True),
    "refresh_token": text(secret=True),
    "client_secret": text(secret=True),
    "client_id": text(allow_number=True),
    "api_url": url,
    "sync_mode": choice("explicit", "mirror"),
    "on_invalid_record": choice("skip", "fail"),
    "records_per_request": integer(1, 10_000),
    "max_requests_per_minute": integer(1),
    "max_reads_per_minute": integer(1),
    "list_type": choice(*_LIST_TYPES),
    "dry_run": boolean,
    "max_removal_fraction": fraction,
    "ledger_url": text(),  # empty: the default SQLite file, as when absent
    "idfa_case": choice("lower", "upper"),
}
assert set(SECRET_SETTINGS) <= set(RULES)


def config_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """What is wrong with the target's own settings, one sentence each; [] when nothing is."""
    errors: list[str] = []
    if config.get("ad_account_id") in (None, ""):
        errors.append(f"ad_account_id is required: {_AD_ACCOUNT}")
    for name, rule in RULES.items():
        value = config.get(name)
        if value is None or (name == "ad_account_id" and value == ""):
            continue  # absent: the default applies (or, for ad_account_id, said above)
        problem = rule(name, value)
        if problem is not None:
            errors.append(problem)
    if config.get("streams") is not None:
        errors.extend(streams("streams", config["streams"]))
    return errors

"""The emulator's options: each default written once, for the class, the command and the
control API alike. Defaults are Pinterest's behaviour where it is known; where it is not
(FACTS.md, "Not known"), the strict reading, and the help says so."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .outcome import Json

DEFAULT_ACCESS_TOKEN = "test-access-token"  # noqa: S105 - a fixture value
DEFAULT_REFRESH_TOKEN = "test-refresh-token"  # noqa: S105 - a fixture value
DEFAULT_CLIENT_ID = "test-client-id"
DEFAULT_CLIENT_SECRET = "test-client-secret"  # noqa: S105 - a fixture value
DEFAULT_SCOPE = "ads:read,ads:write"
DEFAULT_AD_ACCOUNT = "549755885175"  # the account of the README and the tests
SIXTY_DAYS = 60 * 24 * 3600
ACCESS_TOKEN_EXPIRES_IN = 30 * 24 * 3600
TOO_SMALL_CODE = 2613
ONE_MEGABYTE = 1_048_576

# Old names that keep working: `min_audience_size` counted members before matching existed.
ALIASES = {"min_audience_size": "min_matched_users"}


# How the emulator refuses an ad account the token may not use (FACTS.md: code 29, "not
# permitted", with 403; code 2, "ad account not found"; which one Pinterest answers is not known).
AD_ACCOUNT_REFUSALS = {
    "forbidden": (403, 29, "You are not permitted to access that resource."),
    "not_found": (404, 2, "AdAccount not found."),
}


def _option(
    default: Any,
    help: str,
    *,
    runtime: bool = True,
    flag: str | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """An option; ``flag`` names its command-line flag when not the name with dashes,
    ``choices`` the values a text option may take."""
    metadata = {"help": help, "runtime": runtime, "flag": flag, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass
class Options:
    """How the emulator behaves. Each field is a keyword argument of ``PinterestEmulator``, a
    ``pinterest-emulator`` flag (``--matching-delay``...) and, unless marked fixed, a key of
    ``configure()`` / ``POST /_emulator/config``."""

    # ---- asynchronous matching (Pinterest matches uploads to its users within 24-48 hours)
    matching_delay: float = _option(
        5.0,
        "seconds a list stays PROCESSING after each upload before it is READY or TOO_SMALL "
        "(Pinterest: up to 48 hours; a few seconds here; 0: matched at once)",
    )
    match_fraction: float = _option(
        0.6,
        "share of uploaded members that are Pinterest users (most uploaded emails are not); "
        "a member is matched when int(first 8 hex digits of its hash, 16) / 16**8 is below it",
    )
    min_matched_users: int = _option(
        100,
        "a list with fewer matched members is TOO_SMALL and gets no audience "
        "(Pinterest requires 100; alias: min_audience_size)",
    )
    too_small_status: int = _option(
        400, "HTTP status refusing an audience for a TOO_SMALL list (Pinterest's: not known)"
    )
    too_small_code: int = _option(
        TOO_SMALL_CODE, "error code refusing an audience for a TOO_SMALL list (not known)"
    )
    lookalike_countries: str = _option(
        "US,CA,GB",
        "countries an ACTALIKE (lookalike) audience may target, comma-separated (Pinterest "
        "names US, CA and GB; its full list is not known); others are answered 400",
    )
    min_seed_size: int = _option(
        100,
        "an ACTALIKE audience's seeds each need at least this many matched users, else 400 "
        "with too_small_status and too_small_code (Pinterest's lowest seed size is not known; "
        "100, the minimum of an audience, is assumed)",
    )
    invalid_rule_code: int = _option(
        2625,
        "error code of a 400 refusing an ACTALIKE rule: a seed that is not an audience of the "
        "account or was REMOVED, a country not offered, a percentage out of 1-10 (not known)",
    )
    cumulative_exceptions: bool = _option(
        False,
        "a list's exceptions sum up all its uploads; off, they describe its latest upload, "
        "so each create or update answer describes that call's records (not known)",
    )
    # ---- refusals
    max_body_bytes: int = _option(
        ONE_MEGABYTE,
        "a request body over this many bytes is answered 413 (Pinterest's limit is not "
        "known; Tealium documents 1 MB per call for its Pinterest connector; 0: no limit)",
    )
    body_too_large_code: int = _option(413, "error code of the 413 answer (not known)")
    body_too_large_message: str = _option(
        "Request entity too large.", "error message of the 413 answer (not known)"
    )
    daily_quota: int = _option(
        0,
        "calls per emulated day in all, answered 429 code 8 when used up (Pinterest's "
        "Trial access: 1000; Standard access has none: 0, off)",
    )
    day_length: float = _option(
        86400.0,
        "seconds in an emulated day; a day begins with its first call "
        "(POST /_emulator/quota/new_day ends it at once)",
    )
    ads_write_per_minute: int = _option(
        400, "calls per 60 s of category ads_write (Pinterest's Standard access: 400; 0: none)"
    )
    ads_read_per_minute: int = _option(
        1000, "calls per 60 s of category ads_read (Pinterest's Standard access: 1000; 0: none)"
    )
    scope: str = _option(
        DEFAULT_SCOPE,
        "scopes of the initial tokens and of the tokens refreshed from them (comma-separated); "
        "a call needing a scope its token lacks is answered 401 code 3",
    )
    ad_accounts: tuple[str, ...] = _option(
        (DEFAULT_AD_ACCOUNT,),
        "ad accounts the tokens may use (repeatable: --ad-account 1 --ad-account 2; a token "
        "added through POST /_emulator/tokens may bring its own); a call under any other ad "
        "account is refused as --ad-account-refusal says",
        flag="ad-account",
    )
    ad_account_refusal: str = _option(
        "forbidden",
        "the answer to a call under an ad account its token may not use: forbidden (403, "
        "code 29, not permitted) or not_found (404, code 2, ad account not found); which one "
        "Pinterest gives is not known",
        choices=tuple(AD_ACCOUNT_REFUSALS),
    )
    # ---- tokens
    token_lifetime: int | None = _option(
        None, "access tokens expire after this many successful calls (none: never)"
    )
    refresh_token_expires_in: int = _option(
        SIXTY_DAYS, "lifetime in seconds of a refresh token issued by continuous refresh"
    )
    client_id: str = _option(
        DEFAULT_CLIENT_ID, "the app id of the token call (fixed)", runtime=False
    )
    client_secret: str = _option(
        DEFAULT_CLIENT_SECRET, "the app secret of the token call (fixed)", runtime=False
    )
    # ---- the emulator itself
    page_size: int = _option(2, "items per page when a list call gives no page_size")
    latency: float = _option(0.0, "seconds added to every API request")
    record_bodies: bool = _option(True, "keep request bodies in the request log")
    head_and_options: bool = _option(
        False,
        "answer HEAD as GET without a body and OPTIONS with 204 and an Allow header (not "
        "known); off, both are answered 405 like any method the OpenAPI file does not list",
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            setattr(self, spec.name, _checked(spec, getattr(self, spec.name)))

    @classmethod
    def create(cls, given: Json) -> Options:
        """Options from keyword arguments (aliases accepted); TypeError for an unknown one."""
        return cls(**{ALIASES.get(name, name): value for name, value in given.items()})

    def update(self, changes: Json) -> list[str]:
        """Apply run-time changes (each value coerced to its option's type); ValueError for an
        unknown option, a fixed one or a bad value. Returns the names changed."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        coerced: Json = {}
        for given_name, value in changes.items():
            name = ALIASES.get(given_name, given_name)
            spec = fields.get(name)
            if spec is None or not spec.metadata["runtime"]:
                raise ValueError(f"unknown emulator option {given_name!r}")
            coerced[name] = _checked(spec, value)
        for name, value in coerced.items():
            setattr(self, name, value)
        return list(coerced)

    def runtime_view(self) -> Json:
        """The options that can change at run time, JSON-ready."""
        return {
            f.name: _json_ready(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.metadata["runtime"]
        }

    def ad_account_refusal_answer(self) -> tuple[int, int, str]:
        """(HTTP status, code, message) refusing an ad account the token may not use."""
        return AD_ACCOUNT_REFUSALS[self.ad_account_refusal]


class OptionAttribute:
    """An attribute that reads one option of ``owner.options`` and sets it through
    ``owner.configure`` (so that a change has its effects, as at run time)."""

    def __init__(self, option: str | None = None) -> None:
        self.option = option or ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.option = self.option or name

    def __get__(self, owner: Any, owner_type: type | None = None) -> Any:
        return getattr(owner.options, self.option)

    def __set__(self, owner: Any, value: Any) -> None:
        owner.configure(**{self.option: value})


def option_fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Options))


def option_flag(spec: dataclasses.Field[Any]) -> str:
    """The command-line flag of an option (``--matching-delay``, ``--ad-account``)."""
    return "--" + (spec.metadata["flag"] or spec.name.replace("_", "-"))


def shown_default(spec: dataclasses.Field[Any]) -> str:
    """An option's default as the docs and ``--help`` show it."""
    if isinstance(spec.default, tuple):
        return ", ".join(spec.default)
    return str(spec.default)


def describe_options() -> str:
    """One paragraph per option: name, default, what it does (for docs and docstrings)."""
    return "\n".join(
        f"{f.name} (default {shown_default(f)}): {f.metadata['help']}" for f in option_fields()
    )


def _json_ready(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _checked(spec: dataclasses.Field[Any], value: Any) -> Any:
    kind = str(spec.type)
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        return _boolean(value)
    if kind.startswith("tuple"):
        return ad_account_ids(spec.name, value)
    if kind.startswith(("int", "float")):
        number = int(value) if kind.startswith("int") else float(value)
        if number < 0 or (spec.name == "match_fraction" and number > 1):
            raise ValueError(f"option {spec.name!r} is out of range: {value!r}")
        return number
    text = str(value)
    if spec.metadata["choices"] and text not in spec.metadata["choices"]:
        allowed = ", ".join(spec.metadata["choices"])
        raise ValueError(f"option {spec.name!r} must be one of {allowed}: {value!r}")
    return text


def ad_account_ids(name: str, value: Any) -> tuple[str, ...]:
    """Ad account ids (digits) from a list, or from one text with commas or spaces."""
    text = isinstance(value, str | int)
    items = str(value).replace(",", " ").split() if text else list(value)
    ids = tuple(dict.fromkeys(str(item).strip() for item in items))
    if not all(item.isdigit() and item.isascii() for item in ids):
        raise ValueError(f"option {name!r} takes ad account ids made of digits: {value!r}")
    return ids


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)

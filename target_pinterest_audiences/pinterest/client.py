"""Pinterest API v5 endpoints for customer lists and audiences: paths, bodies, paging.

Members arrive as blobs (``bytes`` of ``k * 32`` bytes: ``k`` SHA-256 digests end to end) and
are hex-encoded here for the wire. Sending, pacing, token refresh, error mapping and retries
are the :mod:`.transport`'s; nothing here looks at a status code.
"""

from __future__ import annotations

import binascii
import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal
from urllib.parse import quote

from .auth import TokenManager
from .errors import ACCOUNT_SETTING, PinterestError, Subject
from .http_retry import RetryPolicy
from .pacing import Pacer, RateLimiter
from .stats import ClientStats
from .transport import Account, Call, Transport

PAGE_SIZE = 250
DIGEST_SIZE = 32  # a member: one SHA-256 digest

Operation = Literal["ADD", "REMOVE"]


def _records(digests: bytes) -> tuple[bytes, int]:
    """The ``records`` value for a blob of digests (comma-separated hex), and their count."""
    if not isinstance(digests, bytes) or not digests or len(digests) % DIGEST_SIZE:
        raise ValueError("digests must be a non-empty blob of 32-byte SHA-256 digests")
    # The same text as digests.hex(",", 32), made as bytes at once: a 10,000-member call would
    # otherwise hold its 650 KB body as str, as bytes and again inside the JSON encoder.
    return binascii.hexlify(digests, b",", DIGEST_SIZE), len(digests) // DIGEST_SIZE


def _records_body(fields: dict[str, str], records: bytes) -> bytes:
    """``fields`` and ``records`` as one JSON object; the hex records need no escaping."""
    head = json.dumps(fields, separators=(",", ":"))[:-1].encode()
    return b"".join((head, b',"records":"', records, b'"}'))


class PinterestClient:
    """Thread-safe client of the Pinterest v5 customer list and audience endpoints.

    A client talks to one ad account; :meth:`view` gives clients of other ad accounts (or
    with counters of their own) that share its connections, tokens and pacer.
    """

    def __init__(
        self,
        api_url: str,
        ad_account_id: str,
        tokens: TokenManager,
        *,
        max_writes_per_minute: int = 400,
        max_reads_per_minute: int = 1000,
        rate_period: float = 60.5,
        connect_timeout: float = 10,
        read_timeout: float = 120,
        retry: RetryPolicy | None = None,
        user_agent: str = "target-pinterest-audiences",
        page_size: int = PAGE_SIZE,
        account_setting: str = ACCOUNT_SETTING,
    ) -> None:
        """``rate_period``: the pacing window in seconds for the per-minute caps. Half a
        second over a minute by default: Pinterest counts calls when they arrive, and
        arrivals jitter with the network, so a window exactly 60 s long could see quota + 1.
        The client's pacer (``pacer``) keeps both caps for every call of the client and of
        its views. ``account_setting``: the setting that names the ad account, for
        messages (``ad_account_id``, or a stream's own)."""
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
        self.page_size = page_size
        self.api_url = api_url.rstrip("/")
        self.ad_account_id = str(ad_account_id)
        self.account_setting = account_setting
        self.tokens = tokens
        self.retry = retry if retry is not None else RetryPolicy()
        real_time = self.retry.sleep is time.sleep
        self.pacer = Pacer(
            writes_per_minute=max_writes_per_minute,
            reads_per_minute=max_reads_per_minute,
            period=rate_period,
            clock=self.retry.clock,
            # Real time: the pacer's own waits, which stopping the run interrupts.
            sleep=None if real_time else self.retry.sleep,
        )
        self.transport = Transport(
            self.api_url,
            tokens,
            retry=self.retry,
            pacer=self.pacer,
            timeout=(float(connect_timeout), float(read_timeout)),
            user_agent=user_agent,
        )
        self._stats: ClientStats | None = None  # a view's own counters, besides the client's

    @property
    def write_limiter(self) -> RateLimiter:
        return self.pacer.writes

    @property
    def read_limiter(self) -> RateLimiter:
        return self.pacer.reads

    @property
    def stats(self) -> ClientStats:
        """This view's own counters if it has them, else the counters of every call made
        through the client and its views."""
        return self._stats if self._stats is not None else self.transport.stats

    def view(
        self,
        *,
        ad_account_id: str | None = None,
        account_setting: str | None = None,
        stats: ClientStats | None = None,
    ) -> PinterestClient:
        """A client of ``ad_account_id`` (default: this one's) sharing this client's
        connections, tokens, pacer and counters; ``stats`` also counts the view's own calls.

        Close the client, never a view."""
        view = copy.copy(self)
        if ad_account_id is not None:
            view.ad_account_id = str(ad_account_id)
        if account_setting is not None:
            view.account_setting = account_setting
        if stats is not None:
            view._stats = stats
        return view

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the HTTP sessions and the token manager's."""
        self.transport.close()
        self.tokens.close()

    def __enter__(self) -> PinterestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PinterestClient(api_url={self.api_url!r}, ad_account_id={self.ad_account_id!r}, "
            f"tokens={self.tokens!r})"
        )

    def _call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | bytes | None = None,
        subject: Subject | None = None,
        on_resend: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        account = f"ad_accounts/{quote(self.ad_account_id, safe='')}"
        return self.transport.request(
            Call(
                method,
                f"{account}/{path}",
                description,
                Account(self.ad_account_id, self.account_setting),
                params,
                body,
                subject,
                stats=self._stats,
                on_resend=on_resend,
            )
        )

    def _paginate(self, path: str, description: str) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following ``bookmark`` through all pages."""
        bookmark: str | None = None
        page = 0
        while True:
            params: dict[str, Any] = {"page_size": self.page_size}
            if bookmark:
                params["bookmark"] = bookmark
            page += 1
            data = self._call("GET", path, f"{description} (page {page})", params=params)
            items = data.get("items") or []
            if not isinstance(items, list):
                raise PinterestError(f"{description}: unexpected answer without an items list")
            for item in items:
                if isinstance(item, dict):
                    if "id" in item and item["id"] is not None:
                        item["id"] = str(item["id"])
                    yield item
            next_bookmark = data.get("bookmark")
            if not next_bookmark or next_bookmark == bookmark:
                return
            bookmark = str(next_bookmark)

    # ------------------------------------------------------------ customer lists
    def iter_customer_lists(self) -> Iterator[dict[str, Any]]:
        """Every customer list of the ad account (all pages)."""
        yield from self._paginate("customer_lists", "GET customer_lists")

    def find_customer_lists_by_name(self, name: str) -> list[dict[str, Any]]:
        return [item for item in self.iter_customer_lists() if item.get("name") == name]

    def get_customer_list(self, list_id: str) -> dict[str, Any]:
        list_id = str(list_id)
        return self._call(
            "GET",
            f"customer_lists/{quote(list_id, safe='')}",
            f"GET customer_lists/{list_id}",
            subject=Subject("customer list", list_id),
        )

    def create_customer_list(self, name: str, list_type: str, digests: bytes) -> dict[str, Any]:
        """Create a list holding the members of the blob ``digests``."""
        records, count = _records(digests)
        return self._call(
            "POST",
            "customer_lists",
            f"POST customer_lists ({list_type}, {count} records)",
            body=_records_body({"name": name, "list_type": list_type}, records),
        )

    def update_customer_list(
        self,
        list_id: str,
        operation: Operation,
        digests: bytes,
        *,
        on_resend: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Add (``ADD``) or remove (``REMOVE``) the members of the blob ``digests``.

        ``on_resend`` is called before the call goes again after an attempt that may have
        been applied (no answer came back, or a 5xx): Pinterest may then count its records
        twice in the list's counters.
        """
        if operation not in ("ADD", "REMOVE"):
            raise ValueError("operation must be 'ADD' or 'REMOVE'")
        records, count = _records(digests)
        list_id = str(list_id)
        return self._call(
            "PATCH",
            f"customer_lists/{quote(list_id, safe='')}",
            f"PATCH customer_lists/{list_id} ({operation}, {count} records)",
            body=_records_body({"operation_type": operation}, records),
            subject=Subject("customer list", list_id),
            on_resend=on_resend,
        )

    # ----------------------------------------------------------------- audiences
    def iter_audiences(self) -> Iterator[dict[str, Any]]:
        """Every audience owned by the ad account (all pages)."""
        yield from self._paginate("audiences", "GET audiences")

    def find_customer_list_audience(self, list_id: str) -> dict[str, Any] | None:
        """The CUSTOMER_LIST audience built on ``list_id`` (the most recent if several),
        leaving out audiences whose status is ``REMOVED``."""
        list_id = str(list_id)
        found = [
            audience
            for audience in self.iter_audiences()
            if audience.get("audience_type") == "CUSTOMER_LIST"
            and str((audience.get("rule") or {}).get("customer_list_id")) == list_id
            and audience.get("status") != "REMOVED"  # Pinterest still lists removed ones
        ]
        if not found:
            return None

        def key(audience: dict[str, Any]) -> tuple[int, int, str]:
            ident = str(audience.get("id", ""))
            return (1, int(ident), ident) if ident.isdigit() else (0, 0, ident)

        return max(found, key=key)

    def create_audience(
        self, name: str, customer_list_id: str, description: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "audience_type": "CUSTOMER_LIST",
            "rule": {"customer_list_id": str(customer_list_id)},
        }
        if description is not None:
            body["description"] = description
        return self._call(
            "POST", "audiences", f"POST audiences (customer list {customer_list_id})", body=body
        )

    def create_lookalike(
        self, name: str, seed_id: str, country: str, percentage: int
    ) -> dict[str, Any]:
        """An ACTALIKE audience: users like the seed audience's, in ``country``, ``percentage``
        percent (1-10) of that country's users."""
        body = {
            "name": name,
            "audience_type": "ACTALIKE",
            "rule": {"seed_id": [str(seed_id)], "country": country, "percentage": percentage},
        }
        return self._call(
            "POST",
            "audiences",
            f"POST audiences (lookalike {country} {percentage}% of audience {seed_id})",
            body=body,
            subject=Subject("lookalike", str(seed_id)),
        )

    def get_audience(self, audience_id: str) -> dict[str, Any]:
        audience_id = str(audience_id)
        return self._call(
            "GET",
            f"audiences/{quote(audience_id, safe='')}",
            f"GET audiences/{audience_id}",
            subject=Subject("audience", audience_id),
        )

    def update_audience(
        self, audience_id: str, *, name: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Rename or re-describe an audience; only the fields given are sent."""
        fields = {
            key: value
            for key, value in (("name", name), ("description", description))
            if value is not None
        }
        if not fields:
            raise ValueError("update_audience needs a name or a description")
        audience_id = str(audience_id)
        return self._call(
            "PATCH",
            f"audiences/{quote(audience_id, safe='')}",
            f"PATCH audiences/{audience_id} (UPDATE {', '.join(fields)})",
            body={"operation_type": "UPDATE", **fields},
            subject=Subject("audience", audience_id),
        )

    # ------------------------------------------------------------------- access
    def check_access(self) -> None:
        """One cheap read that proves the token and the ad account (and ``api_url``).

        Raises what any call would: :class:`~.errors.PinterestAuthError` for the token,
        :class:`~.errors.PinterestScopeError` for a 403 (an ad account the token may not use)
        and :class:`~.errors.PinterestApiError` for a 404, both naming the account setting."""
        self._call(
            "GET", "customer_lists", "GET customer_lists (access check)", params={"page_size": 1}
        )

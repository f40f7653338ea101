"""The API operations on the model, by operationId, and the views they answer with."""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from . import matching
from .matching import Unusable
from .model import Audience, CustomerList, Model
from .options import ACCESS_TOKEN_EXPIRES_IN, Options
from .outcome import ApiError, Json, Outcome
from .tokens import format_scopes, parse_scopes

AUTH_FAILED = {"code": 2, "message": "Authentication failed."}

PathParams = dict[str, str]
Handler = Callable[[PathParams, Json, Any], Outcome]


def split_records(records: str) -> list[str]:
    """The records of a comma-separated ``records`` field, blanks dropped."""
    items = records.split(",")
    if not any(space in records for space in " \t\r\n"):  # the usual body: no strip needed
        return [item for item in items if item]
    return [item for item in (r.strip() for r in items) if item]


def _encode_bookmark(payload: Json) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bookmark(bookmark: str) -> Json:
    try:
        padded = bookmark + "=" * (-len(bookmark) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, 1, "Invalid bookmark.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, 1, "Invalid bookmark.")
    return data


class Operations:
    """One method per operationId of the spec (``/`` read as ``_``); raise ``ApiError``.

    Not thread-safe on its own: the emulator calls it under its lock.
    """

    def __init__(
        self, model: Model, options: Options, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.model = model
        self.options = options
        self.clock = clock  # unix seconds: matching deadlines are kept in state files
        self.unusable: dict[str, Unusable] = {}  # records a test declared unusable

    # ---- uploads

    def upload(self, c: CustomerList, operation: str, records: list[str]) -> None:
        """Apply one create (``ADD``) or update: counts, members, exceptions, matching."""
        now = self.clock()
        usable, exceptions = matching.sort_records(records, self.unusable)
        matching.start_matching(c, now=now, delay=self.options.matching_delay)
        fraction = self.options.match_fraction
        if operation == "ADD":
            matching.add_members(c, usable, fraction)
            c.num_uploaded_user_records += len(records)  # duplicates and members included
        else:
            matching.remove_members(c, usable, fraction)
            c.num_removed_user_records += len(records)  # members not in the list included
        if self.options.cumulative_exceptions:
            matching.merge_exceptions(c.exceptions, exceptions)
        else:
            c.exceptions = exceptions
        c.updated_time = int(now)

    def rematch_all(self) -> None:
        """Count matched members again (the match fraction changed)."""
        for c in self.model.all_lists():
            c.matched = matching.count_matched(c.members, self.options.match_fraction)

    def handler(self, operation_id: str) -> Handler:
        found: Handler = getattr(self, "op_" + operation_id.replace("/", "_"))
        return found

    # ---- views

    def list_status(self, c: CustomerList) -> str:
        return matching.list_status(c, now=self.clock(), minimum=self.options.min_matched_users)

    def list_view(self, c: CustomerList) -> Json:
        return {
            "ad_account_id": c.ad_account_id,
            "created_time": c.created_time,
            "id": c.id,
            "name": c.name,
            "num_batches": c.num_batches,
            "num_removed_user_records": c.num_removed_user_records,
            "num_uploaded_user_records": c.num_uploaded_user_records,
            "status": self.list_status(c),
            "type": "customerlist",
            "updated_time": c.updated_time,
            "exceptions": {key: dict(entry) for key, entry in c.exceptions.items()},
        }

    def list_state(self, c: CustomerList, *, members: bool = True) -> Json:
        """The view plus what the emulator knows: list_type, member and matched counts,
        seconds of matching left and (``members``) the members."""
        view: Json = {
            **self.list_view(c),
            "list_type": c.list_type,
            "member_count": len(c.members),
            "matched_count": c.matched,
            "matching_seconds_left": max(0.0, c.processing_until - self.clock()),
        }
        if members:
            view["members"] = sorted(c.members)
        return view

    def audience_view(self, a: Audience) -> Json:
        status, size = a.status or "READY", None
        list_id = a.rule.get("customer_list_id")
        if a.audience_type == "CUSTOMER_LIST" and isinstance(list_id, str):
            c = self.model.find_list(a.ad_account_id, list_id)
            status, size = matching.audience_figures(
                c, now=self.clock(), minimum=self.options.min_matched_users
            )
        elif a.audience_type == "ACTALIKE":
            status, size = matching.lookalike_figures(
                a.rule, a.created_timestamp, now=self.clock(), delay=self.options.matching_delay
            )
        status = a.status or status  # a removed audience stays REMOVED
        return {
            "ad_account_id": a.ad_account_id,
            "audience_type": a.audience_type,
            "created_timestamp": a.created_timestamp,
            "description": a.description,
            "id": a.id,
            "name": a.name,
            "rule": dict(a.rule),
            "size": size,
            "status": status,
            "type": "audience",
            "updated_timestamp": a.updated_timestamp,
        }

    # ---- paging

    def _page(self, kind: str, account: str, ids: list[str], query: Json) -> tuple[list[str], Any]:
        """The ids of one page (ascending by id, or descending) and the next page's bookmark
        (None on the last page). The bookmark names the kind, account and order it pages, and
        the last id served: a page starts after it (by bisection, not a scan of the account)."""
        order = str(query.get("order", "ASCENDING"))
        size = int(query.get("page_size", self.options.page_size))
        ordered = sorted(ids, key=int)  # ascending; a DESCENDING page is read backwards
        start, stop = 0, len(ordered)
        bookmark = query.get("bookmark")
        if bookmark:
            mark = _decode_bookmark(str(bookmark))
            if mark.get("k") != kind or mark.get("a") != account or mark.get("o") != order:
                raise ApiError(400, 1, "Invalid bookmark for this request.")
            after = int(mark.get("after", 0))
            if order == "DESCENDING":
                stop = bisect.bisect_left(ordered, after, key=int)
            else:
                start = bisect.bisect_right(ordered, after, key=int)
        if order == "DESCENDING":
            page = ordered[max(start, stop - size) : stop][::-1]
        else:
            page = ordered[start : start + size]
        next_mark = None
        if stop - start > size:
            next_mark = _encode_bookmark({"k": kind, "a": account, "o": order, "after": page[-1]})
        return page, next_mark

    # ---- customer lists

    def op_customer_lists_list(self, p: PathParams, q: Json, body: Any) -> Outcome:
        account = p["ad_account_id"]
        lists = self.model.lists.get(account, {})
        page, mark = self._page("customer_lists", account, list(lists), q)
        return Outcome(200, {"items": [self.list_view(lists[i]) for i in page], "bookmark": mark})

    def op_customer_lists_create(self, p: PathParams, q: Json, body: Any) -> Outcome:
        c = self.model.create_list(
            p["ad_account_id"], body["name"], body.get("list_type", "EMAIL"), now=int(self.clock())
        )
        self.upload(c, "ADD", split_records(body["records"]))
        return Outcome(200, self.list_view(c))

    def op_customer_lists_get(self, p: PathParams, q: Json, body: Any) -> Outcome:
        c = self.model.get_list(p["ad_account_id"], p["customer_list_id"])
        return Outcome(200, self.list_view(c))

    def op_customer_lists_update(self, p: PathParams, q: Json, body: Any) -> Outcome:
        c = self.model.get_list(p["ad_account_id"], p["customer_list_id"])
        self.upload(c, body["operation_type"], split_records(body["records"]))
        c.num_batches += 1
        return Outcome(200, self.list_view(c))

    # ---- audiences

    def op_audiences_list(self, p: PathParams, q: Json, body: Any) -> Outcome:
        account = p["ad_account_id"]
        audiences = self.model.audiences.get(account, {})
        ids = [] if q.get("ownership_type") == "RECEIVED" else list(audiences)
        page, mark = self._page("audiences", account, ids, q)
        items = [self.audience_view(audiences[i]) for i in page]
        return Outcome(200, {"items": items, "bookmark": mark})

    def op_audiences_create(self, p: PathParams, q: Json, body: Any) -> Outcome:
        account = p["ad_account_id"]
        rule = dict(body.get("rule") or {})
        if body["audience_type"] == "CUSTOMER_LIST":
            list_id = rule.get("customer_list_id")
            if not list_id:
                raise ApiError(
                    400, 1, "rule.customer_list_id is required for a CUSTOMER_LIST audience."
                )
            c = self.model.get_list(account, str(list_id))
            if self.list_status(c) == "TOO_SMALL":  # still PROCESSING: INITIALIZING, accepted
                raise ApiError(
                    self.options.too_small_status,
                    self.options.too_small_code,
                    "Customer list is too small to create an audience "
                    f"({c.matched} < {self.options.min_matched_users} matched users).",
                )
        elif body["audience_type"] == "ACTALIKE":
            self._check_lookalike(account, rule)
        a = self.model.create_audience(
            account,
            body["name"],
            body["audience_type"],
            rule,
            body.get("description"),
            now=int(self.clock()),
        )
        return Outcome(200, self.audience_view(a))

    def _check_lookalike(self, account: str, rule: Json) -> None:
        """An ACTALIKE rule as Pinterest describes it, strictly: seeds that are audiences of
        the account, not REMOVED, each with ``min_seed_size`` matched users; a country the
        emulator offers; a percentage from 1 to 10."""
        code = self.options.invalid_rule_code
        seeds = rule.get("seed_id")
        if not isinstance(seeds, list) or not seeds:
            raise ApiError(400, code, "rule.seed_id must list the seed audience ids.")
        for seed_id in seeds:
            seed = self.model.audiences.get(account, {}).get(str(seed_id))
            if seed is None:
                raise ApiError(400, code, f"Seed audience {seed_id} not found in this account.")
            view = self.audience_view(seed)
            if view["status"] == "REMOVED":
                raise ApiError(400, code, f"Seed audience {seed_id} was removed.")
            size = view["size"] or 0
            if size < self.options.min_seed_size:
                raise ApiError(
                    self.options.too_small_status,
                    self.options.too_small_code,
                    f"Seed audience {seed_id} is too small to create a lookalike audience "
                    f"({size} < {self.options.min_seed_size} matched users).",
                )
        countries = {c.strip() for c in self.options.lookalike_countries.split(",") if c.strip()}
        if rule.get("country") not in countries:
            offered = ", ".join(sorted(countries))
            raise ApiError(
                400, code, f"Country {rule.get('country')!r} is not available ({offered})."
            )
        percentage = rule.get("percentage")
        if (
            not isinstance(percentage, int)
            or isinstance(percentage, bool)
            or not (1 <= percentage <= 10)
        ):
            raise ApiError(400, code, "Percentage should be 1-10.")

    def op_audiences_get(self, p: PathParams, q: Json, body: Any) -> Outcome:
        a = self.model.get_audience(p["ad_account_id"], p["audience_id"])
        return Outcome(200, self.audience_view(a))

    def op_audiences_update(self, p: PathParams, q: Json, body: Any) -> Outcome:
        account = p["ad_account_id"]
        a = self.model.get_audience(account, p["audience_id"])
        if body.get("operation_type") == "REMOVE":
            a.status = "REMOVED"
        if "name" in body:
            a.name = body["name"]
        if "description" in body:
            a.description = body["description"]
        if "rule" in body:
            rule = dict(body["rule"])
            list_id = rule.get("customer_list_id")
            if a.audience_type == "CUSTOMER_LIST" and list_id is not None:
                self.model.get_list(account, str(list_id))
            a.rule = {**a.rule, **rule}
        a.updated_timestamp = int(self.clock())
        return Outcome(200, self.audience_view(a))

    # ---- OAuth

    def app_authenticated(self, basic: tuple[str, str] | None) -> bool:
        """Whether HTTP Basic credentials are the app's id and secret."""
        options = self.options
        return basic is not None and (
            secrets.compare_digest(basic[0], options.client_id)
            and secrets.compare_digest(basic[1], options.client_secret)
        )

    def oauth_token(self, body: Json, basic: tuple[str, str] | None) -> Outcome:
        """``POST /oauth/token``: exchange a refresh token, app id and secret as Basic auth."""
        options, tokens = self.options, self.model.tokens
        if not self.app_authenticated(basic):
            return Outcome(401, dict(AUTH_FAILED))
        if body.get("grant_type") != "refresh_token":
            return Outcome(400, {"code": 1, "message": "Unsupported grant_type."})
        now = int(self.clock())
        old = str(body.get("refresh_token", ""))
        granted = tokens.refresh.get(old)
        if granted is None or granted.expires_at <= now:
            return Outcome(400, {"code": 283, "message": "Invalid refresh token"})
        expires_at = granted.expires_at
        scopes = granted.scopes  # a refreshed token has the refresh token's scopes, or fewer
        if body.get("scope"):
            scopes = scopes & parse_scopes(str(body["scope"]))
        access = tokens.issue_access(scopes, ad_accounts=granted.ad_accounts)
        refresh = old
        if str(body.get("continuous_refresh", "")).lower() == "true":
            expires_at = now + options.refresh_token_expires_in
            refresh = tokens.rotate_refresh(old, expires_at=expires_at)
        return Outcome(
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": ACCESS_TOKEN_EXPIRES_IN,
                "scope": format_scopes(scopes),
                "response_type": "refresh_token",
                "refresh_token": refresh,
                "refresh_token_expires_in": max(0, expires_at - now),
                "refresh_token_expires_at": expires_at,
            },
        )

"""A stream's lookalike (ACTALIKE) audiences: Pinterest users like its audience, per country.

After the stream's CUSTOMER_LIST audience exists, each configured lookalike is found among the
account's ACTALIKE audiences (by seed, country and percentage; REMOVED ones left out) or created
on that seed, never twice (`create_once`, as for lists and audiences). A changed name renames
it. While the stream has no audience yet, or Pinterest refuses the seed as too small, the
lookalike waits for a later run (deferred, not failed); any other refusal fails the stream with
Pinterest's words. A lookalike of this seed that is no longer configured is left in place
(campaigns may use it), with a warning naming it.
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass

from target_pinterest_audiences.errors import StreamFailed
from target_pinterest_audiences.loading.account import most_recent_audience
from target_pinterest_audiences.pinterest import PinterestApiError, PinterestError

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.loading.resolve import Where
    from target_pinterest_audiences.settings import Lookalike

Item = dict[str, t.Any]
NAME_LENGTH = 100  # Pinterest's limit on an audience name is not known: stay well inside it
NO_AUDIENCE = "the stream has no audience yet (its list has too few matched users)"


def default_name(seed_name: str, wanted: Lookalike) -> str:
    """The seed audience's name, the country and the percentage, within `NAME_LENGTH`."""
    tail = f" (lookalike {wanted.country} {wanted.percentage}%)"
    head = seed_name.strip() or "Audience"
    if len(head) + len(tail) > NAME_LENGTH:
        head = head[: NAME_LENGTH - len(tail) - 1].rstrip() + "…"
    return head + tail


def matches(item: Item, seed_id: str, country: str, percentage: int) -> bool:
    """An ACTALIKE audience on this seed, country and percentage (Pinterest's own example sends
    the percentage as a string)."""
    rule = item.get("rule") or {}
    seeds = rule.get("seed_id") or []
    return (
        item.get("audience_type") == "ACTALIKE"
        and item.get("status") != "REMOVED"
        and [str(s) for s in seeds] == [seed_id]
        and rule.get("country") == country
        and str(rule.get("percentage")) == str(percentage)
    )


@dataclass(frozen=True)
class Settled:
    """One configured lookalike after the run: its audience, or why it waits."""

    wanted: Lookalike
    name: str | None  # the name it has (None: none yet, no seed to name it after)
    audience: Item | None
    why: str | None = None  # why it waits for a later run (audience None)

    @property
    def audience_id(self) -> str | None:
        return None if self.audience is None else str(self.audience["id"])


class Lookalikes:
    def __init__(self, logger: logging.Logger, *, settle_seconds: float) -> None:
        self.logger = logger
        self.settle_seconds = settle_seconds

    def settle(
        self,
        plan: StreamPlan,
        seed: Item | None,
        wanted: t.Sequence[Lookalike] | None,
        where: Where,
    ) -> list[Settled] | None:
        """Find, create or rename each wanted lookalike of ``seed`` (the stream's audience);
        None when the stream sets no lookalikes (and then says nothing of any)."""
        if wanted is None:
            return None
        if seed is None:
            for one in wanted:
                self.logger.info(
                    "Stream '%s': lookalike %s %d%% waits: %s; a later run creates it.",
                    plan.stream,
                    one.country,
                    one.percentage,
                    NO_AUDIENCE,
                )
            return [Settled(one, one.name, None, NO_AUDIENCE) for one in wanted]
        seed_id = str(seed["id"])
        settled = [self._one(plan, seed, one, where) for one in wanted]
        self._warn_unconfigured(plan, seed_id, wanted, where)
        return settled

    def plan(self, seed: Item | None, wanted: t.Sequence[Lookalike], where: Where) -> list[str]:
        """What a real run would do with each lookalike, for the dry run."""
        said = []
        for one in wanted:
            label = f"{one.country} {one.percentage}%"
            found = None if seed is None else self._find(str(seed["id"]), one, where)
            if seed is None:
                said.append(f"lookalike {label} would wait for the audience")
            elif found is None:
                said.append(f"would create lookalike {label}")
            else:
                said.append(f"would reuse lookalike {label} ({found['id']})")
        return said

    def _find(self, seed_id: str, one: Lookalike, where: Where) -> Item | None:
        return most_recent_audience(
            item
            for item in where.index.audiences("ACTALIKE")
            if matches(item, seed_id, one.country, one.percentage)
        )

    def _one(self, plan: StreamPlan, seed: Item, one: Lookalike, where: Where) -> Settled:
        seed_id = str(seed["id"])
        name = one.name or default_name(str(seed.get("name") or ""), one)
        key = f"{seed_id}/{one.country}/{one.percentage}"
        where.catch_up("lookalike", key, "audiences")
        found = self._find(seed_id, one, where)
        if found is not None:
            if found.get("name") != name:
                found = where.client.update_audience(str(found["id"]), name=name)
                where.index.remember("audiences", found)
                self.logger.info(
                    "Stream '%s': lookalike %s renamed to %r.", plan.stream, found["id"], name
                )
            return Settled(one, name, found)
        label = f"{one.country} {one.percentage}%"

        def lost() -> None:
            self.logger.warning(
                "Stream '%s': the answer to creating lookalike %s was lost; looking it up.",
                plan.stream,
                label,
            )

        def look_up() -> Item | None:
            where.index.refresh("audiences")  # a fresh read, not what the index held
            return self._find(seed_id, one, where)

        try:
            created = where.create(
                "lookalike",
                key,
                lambda: where.client.create_lookalike(name, seed_id, one.country, one.percentage),
                look_up,
                settle_seconds=self.settle_seconds,
                on_lost=lost,
            )
        except PinterestApiError as error:
            if not self._seed_too_small(seed_id, error, where):
                raise StreamFailed(
                    f"Stream '{plan.stream}': the customer list and its audience {seed_id} are "
                    f"synced, but {error}. Check streams.{plan.stream}.lookalikes entry "
                    f"{label}: the country (Pinterest names US, CA and GB) and the percentage "
                    "(1 to 10); the next run creates the lookalike once that is fixed."
                ) from None
            why = (
                f"Pinterest refused the seed audience {seed_id} as too small "
                f"({error.code}: {(error.api_message or '').rstrip('.')})"
            )
            self.logger.warning(
                "Stream '%s': lookalike %s waits: %s; a later run creates it.",
                plan.stream,
                label,
                why,
            )
            return Settled(one, name, None, why)
        if created is None:
            raise StreamFailed(
                f"Stream '{plan.stream}': the customer list and its audience are synced, but "
                f"creating lookalike {label} failed three times with the answer lost; check the "
                "network path to the Pinterest API and run again (the next run creates it)."
            )
        where.index.remember("audiences", created.value)
        self.logger.info(
            "Stream '%s': created lookalike %s (%s) on audience %s.",
            plan.stream,
            created.value["id"],
            label,
            seed_id,
        )
        return Settled(one, name, created.value)

    def _seed_too_small(self, seed_id: str, error: PinterestApiError, where: Where) -> bool:
        """Pinterest refuses the seed as too small: in the refusal's words, or the seed's own
        status and size (Pinterest's code for it is not known)."""
        if "too small" in (error.api_message or "").lower():
            return True
        try:
            seed = where.client.get_audience(seed_id)
        except PinterestError:
            return False
        size = seed.get("size")
        return seed.get("status") in ("TOO_SMALL", "INITIALIZING") or (
            isinstance(size, int) and size < 100
        )

    def _warn_unconfigured(
        self, plan: StreamPlan, seed_id: str, wanted: t.Sequence[Lookalike], where: Where
    ) -> None:
        configured = {(one.country, str(one.percentage)) for one in wanted}
        for item in where.index.audiences("ACTALIKE"):
            rule = item.get("rule") or {}
            if [str(s) for s in rule.get("seed_id") or []] != [seed_id]:
                continue
            if (rule.get("country"), str(rule.get("percentage"))) in configured:
                continue
            self.logger.warning(
                "Stream '%s': lookalike audience %s (%r, %s %s%%) of this stream's audience is "
                "not in streams.%s.lookalikes; it is left in place, since campaigns may use "
                "it. Add it back to lookalikes to manage it, or remove it in Ads Manager to "
                "stop this warning.",
                plan.stream,
                item["id"],
                item.get("name"),
                rule.get("country"),
                rule.get("percentage"),
                plan.stream,
            )

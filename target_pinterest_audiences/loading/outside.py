"""Members a list may hold that this target has no record of, from Pinterest's counters (pure).

Pinterest cannot list a list's members; it counts records: `num_uploaded_user_records` grows
by every record uploaded (duplicates and members already in the list included),
`num_removed_user_records` by every record of a REMOVE (members not in the list included).
Neither ever goes down, so neither can show that members from elsewhere are gone.

So the ledger keeps, per list, how many of Pinterest's uploaded records this target accounts
for: every record it sends as ADD, in either sync mode (whose members it records too, so mirror
mode knows them), counted before the call goes out. Uploaded records beyond that came from
elsewhere (another tool, Ads Manager, explicit runs of a release that recorded nothing): the
list may hold up to that many members mirror mode cannot remove, and a mirror run warns. The
warning stops on what the user does: a fresh list, or an explicit run that removes members from
this list after the warning, which takes the records the warning named as handled.
"""

from __future__ import annotations

from dataclasses import dataclass

from target_pinterest_audiences.ledger import UploadTally


@dataclass(frozen=True)
class Outside:
    """Of a list's uploaded records on Pinterest: those this target accounts for, the rest."""

    uploaded: int  # Pinterest's num_uploaded_user_records
    accounted: int
    warned: int  # named by the latest mirror warning and not yet handled (0: none)

    @property
    def records(self) -> int:
        """Uploaded records from elsewhere, not taken as handled: up to that many members."""
        return max(0, self.uploaded - self.accounted)

    @property
    def handled_by_removal(self) -> int:
        """What an explicit run that removes members from the list takes as handled: the
        records the latest warning named (still outside), not those uploaded since."""
        return min(self.records, self.warned)


def accounted_for(tally: UploadTally, uploaded: int, removed: int) -> int:
    """The records of the list's uploads this target accounts for.

    A list the ledger recorded before it counted this way (`tally.accounted` is None) keeps the
    verdict of the rule it was recorded under: version 2 counted uploads net of removals, so
    what Pinterest's net count showed beyond that stays outside; version 1 counted nothing, and
    its lists (ones mirror mode filled) are taken as accounted for.
    """
    if tally.accounted is not None:
        return tally.accounted
    if tally.legacy_net is None:
        return uploaded
    outside_then = max(0, (uploaded - removed) - tally.legacy_net)
    return uploaded - outside_then

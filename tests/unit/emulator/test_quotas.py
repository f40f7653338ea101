"""The per-minute quotas: reads (ads_read) as writes, a rolling minute, 429 code 8."""

from __future__ import annotations

import pytest
import requests

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.emulator.options import Options
from target_pinterest_audiences.emulator.quotas import Quotas

ACCOUNT = "549755885175"


def test_reads_over_the_read_quota_get_429_code_8_with_a_reset() -> None:
    with PinterestEmulator(ads_read_per_minute=3) as emu, requests.Session() as api:
        api.headers["Authorization"] = "Bearer test-access-token"
        lists = f"{emu.url}/ad_accounts/{ACCOUNT}/customer_lists"
        audiences = f"{emu.url}/ad_accounts/{ACCOUNT}/audiences"
        assert [api.get(lists).status_code for _ in range(2)] == [200, 200]
        assert api.get(audiences).status_code == 200  # one quota for every read
        refused = api.get(f"{lists}/549755813889")
        assert refused.status_code == 429
        assert refused.json() == {
            "code": 8,
            "message": "You have exceeded your rate limit. Try again later.",
        }
        assert 0 < int(refused.headers["X-RateLimit-Reset"]) <= 60
        # writes have their own quota
        created = api.post(lists, json={"name": "n", "records": f"{1:064x}"})
        assert created.status_code == 200
        assert api.get(audiences).status_code == 429
        emu.configure(ads_read_per_minute=0)  # lifted
        assert api.get(audiences).status_code == 200
        assert emu.spec_violations == []


@pytest.mark.parametrize("category", ["ads_read", "ads_write"])
def test_the_minute_rolls_refused_calls_do_not_count(category: str) -> None:
    now = [1000.0]
    options = Options(ads_read_per_minute=3, ads_write_per_minute=3)
    quotas = Quotas(options, clock=lambda: now[0])

    def call_at(t: float) -> int | None:
        now[0] = 1000.0 + t
        refused = quotas.admit(category)
        return None if refused is None else int(refused.headers["X-RateLimit-Reset"])

    assert [call_at(t) for t in (0, 10, 20)] == [None, None, None]
    assert call_at(30) == 30  # the call at 0 leaves the window at 60
    assert call_at(59.5) == 1  # a refused call takes no room in the window
    assert call_at(60) is None  # the call at 0 has left
    assert call_at(61) == 9  # now the call at 10 is the oldest
    assert call_at(70) is None
    other = "ads_write" if category == "ads_read" else "ads_read"
    now[0] = 1071.0
    assert quotas.admit(other) is None  # the other category's window is its own

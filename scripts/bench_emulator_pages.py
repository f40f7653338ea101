"""How fast the emulator serves a big ad account's list calls (issue 17.6).

    .venv/bin/python scripts/bench_emulator_pages.py            # 5,000 lists and audiences

Seeds one ad account with N customer lists, each with a CUSTOMER_LIST audience, in an emulator
with quotas lifted and no latency, then pages through `GET customer_lists` and `GET audiences`
at page_size 250 over HTTP, as the target does, and prints milliseconds per page: the first
listing (every item new to the emulator's answer check) and the next ones (items unchanged).
Every answer is checked against the OpenAPI file as always; the script fails if any was not
valid or if a listing missed or repeated an id.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from target_pinterest_audiences.emulator import PinterestEmulator

ACCOUNT = "549755885175"


def listing(api: requests.Session, url: str) -> tuple[list[float], list[str]]:
    """Seconds per page and the ids of one listing."""
    params: dict[str, object] = {"page_size": 250}
    seconds: list[float] = []
    ids: list[str] = []
    while True:
        started = time.perf_counter()
        answer = api.get(url, params=params, timeout=60)
        body = answer.json()
        seconds.append(time.perf_counter() - started)
        answer.raise_for_status()
        ids += [item["id"] for item in body["items"]]
        if not body["bookmark"]:
            return seconds, ids
        params["bookmark"] = body["bookmark"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=5000, help="lists (and audiences)")
    parser.add_argument("--repeat", type=int, default=3, help="listings after the first")
    args = parser.parse_args()
    options = {"ads_read_per_minute": 0, "matching_delay": 0, "record_bodies": False}
    with PinterestEmulator(**options) as emu, requests.Session() as api:
        api.headers["Authorization"] = "Bearer test-access-token"
        for i in range(args.size):
            list_id = emu.seed_list(ACCOUNT, f"Old campaign {i:05d}", [f"{i:064x}"])
            emu.seed_audience(ACCOUNT, f"Old campaign {i:05d} audience", list_id)
        print(f"{args.size:,} lists and {args.size:,} audiences; ms per page at page_size 250")
        for kind in ("customer_lists", "audiences"):
            url = f"{emu.url}/ad_accounts/{ACCOUNT}/{kind}"
            first, ids = listing(api, url)
            assert ids == sorted(set(ids), key=int) and len(ids) == args.size, "paging is wrong"
            later = [s for _ in range(args.repeat) for s in listing(api, url)[0]]
            print(
                f"  GET {kind:<15} first listing {statistics.mean(first) * 1000:6.1f} ms/page, "
                f"next listings {statistics.mean(later) * 1000:6.1f} ms/page "
                f"({len(first)} pages)"
            )
        assert emu.spec_violations == [], emu.spec_violations[:3]


if __name__ == "__main__":
    main()

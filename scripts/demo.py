"""The README's first command: sync a sample audience to a local Pinterest emulator, end to end.

Starts the emulator (a real HTTP server on 127.0.0.1 that checks every call against
Pinterest's OpenAPI description), writes a sample audience as Singer messages, runs the real
`target-pinterest-audiences` CLI on it, and shows what Pinterest would now hold. No account
needed. Run it twice: the second run reuses the list and audience it created the first time.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from target_pinterest_audiences.emulator import PinterestEmulator

AD_ACCOUNT = "549755885175"
TOKEN = "demo-access-token"


def sample_audience() -> list[dict]:
    schema = {
        "type": "object",
        "properties": {
            k: {"type": ["string", "null"]}
            for k in ("segment_name", "email", "email_sha256", "maid", "action")
        },
    }
    messages: list[dict] = [
        {"type": "SCHEMA", "stream": "holiday_shoppers", "schema": schema, "key_properties": []}
    ]

    def row(**fields: str) -> dict:
        return {
            "type": "RECORD",
            "stream": "holiday_shoppers",
            "record": {"segment_name": "Holiday Shoppers", **fields},
        }

    for n in range(1000):
        messages.append(row(email=f"  Shopper{n}@Example.com ", action="add"))
    for n in range(12):
        messages.append(row(email=f"shopper{n}@example.com", action="remove"))
    messages.append(row(email_sha256=hashlib.sha256(b"vip@example.com").hexdigest(), action="add"))
    messages.append(row(email="not-an-email", action="add"))
    messages.append(row(email="someone@example.com", action="unsubscribe"))
    messages.append(
        {"type": "STATE", "value": {"bookmarks": {"holiday_shoppers": {"as_of": "2026-11-24"}}}}
    )
    return messages


def main() -> int:
    # The config, the input and the target's own directory live here, and go at the end.
    with tempfile.TemporaryDirectory(prefix="tpa-demo-") as tmp:
        return demo(Path(tmp))


def demo(work: Path) -> int:
    with PinterestEmulator(access_tokens={TOKEN}, page_size=2, min_audience_size=100) as emulator:
        config = {"ad_account_id": AD_ACCOUNT, "access_token": TOKEN, "api_url": emulator.url}
        (work / "config.json").write_text(json.dumps(config))
        lines = "".join(json.dumps(m) + "\n" for m in sample_audience())
        print(
            f"Pinterest emulator listening on {emulator.url}; working directory {work} "
            "(removed at the end)"
        )
        state = None
        for attempt in (1, 2):
            print(
                f"\n--- run {attempt}: "
                "target-pinterest-audiences --config config.json < audience.jsonl"
            )
            proc = subprocess.run(
                [sys.executable, "-m", "target_pinterest_audiences", "--config", "config.json"],
                input=lines,
                capture_output=True,
                text=True,
                cwd=work,
                check=False,
            )
            for line in proc.stderr.splitlines():
                if "Summary:" in line or "error" in line.lower() or "warning" in line.lower():
                    print("  log:", line.split(" | ")[-1] if " | " in line else line)
            if proc.returncode != 0:
                print(proc.stderr[-4000:])
                return proc.returncode
            state = json.loads(proc.stdout.strip().splitlines()[-1])
            print("  STATE:", json.dumps(state["pinterest_audiences"]["holiday_shoppers"]))
        lists = emulator.lists(AD_ACCOUNT)
        audiences = emulator.audiences(AD_ACCOUNT)
        entry = state["pinterest_audiences"]["holiday_shoppers"] if state else {}
        members = emulator.members(AD_ACCOUNT, entry["customer_list_id"])
        print("\n--- what Pinterest (the emulator) now holds")
        print(
            f"  customer lists: {len(lists)}  ->  id {entry['customer_list_id']} "
            f"'{entry['segment_name']}' with {len(members)} members (hashes only)"
        )
        print(f"  audiences:      {len(audiences)}  ->  id {entry['audience_id']}")
        print(
            f"  calls checked against Pinterest's OpenAPI description: {len(emulator.requests)}, "
            f"violations: {len(emulator.spec_violations)}"
        )
        ok = (
            len(lists) == 1
            and len(audiences) == 1
            and len(members) == 989
            and not emulator.spec_violations
        )
        print("\nDemo", "succeeded." if ok else "FAILED.")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

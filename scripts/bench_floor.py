"""The floor for this work on one core: no SDK, no HTTP.

Parse each line, normalize and validate the email, SHA-256 it, and join the hashes into
request bodies of 10,000. Anything the target does beyond this is overhead.
Usage: python scripts/bench_floor.py INPUT.jsonl
"""

from __future__ import annotations

import sys
from hashlib import sha256

import msgspec

from target_pinterest_audiences.input.identifiers import EMAIL_RE, MAX_EMAIL_LENGTH


def main() -> None:
    decode = msgspec.json.Decoder().decode
    fullmatch = EMAIL_RE.fullmatch
    hashes: list[str] = []
    bodies = records = 0
    with open(sys.argv[1], "rb") as file:
        for line in file:
            message = decode(line)
            if message.get("type") != "RECORD":
                continue
            email = message["record"]["email"].strip().lower()
            if len(email) <= MAX_EMAIL_LENGTH and fullmatch(email):
                hashes.append(sha256(email.encode()).hexdigest())
                records += 1
            if len(hashes) == 10_000:
                body = ",".join(hashes).encode()
                bodies += len(body) > 0
                hashes = []
    if hashes:
        bodies += 1
    print(f"floor: {records} records, {bodies} bodies", file=sys.stderr)


if __name__ == "__main__":
    main()

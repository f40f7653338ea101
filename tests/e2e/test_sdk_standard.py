"""The SDK's standard target tests, picked one by one (as MeltanoLabs/target-postgres does).

Left out, and why: the file-based tests that load generic tables (array_data, camelcase,
camelcase_complex_schema, duplicate_records, encoded_string_data, no_primary_keys,
optional_attributes, pk_updates, record_missing_fields, record_missing_required_property,
schema_no_properties, schema_updates, special_chars_in_attributes) send rows without the
audience schema's segment_name and identifiers: this target refuses such a stream on purpose
(one stream = one named customer list), so those tests would only prove the refusal.
multiple_state_messages expects the tap's STATE relayed verbatim at every checkpoint, while
this target writes STATE once, after Pinterest accepted everything, with its own key added.
record_missing_key_property checks primary keys, which an audience stream does not use.
In their place `audience_file` runs the SDK's file-test machinery on an audience stream.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetCliPrintsTest,
    TargetInvalidSchemaTest,
    TargetRecordBeforeSchemaTest,
)
from singer_sdk.testing.templates import TargetFileTestTemplate

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.target import TargetPinterestAudiences

AD_ACCOUNT = "549755885175"
# The SDK builds its test class at import time with a fixed config, so this module's emulator
# starts at import and lives as long as the test process (a daemon thread).
_EMULATOR = PinterestEmulator(page_size=2)
_EMULATOR.start()
# The SDK runs the target in this process, in the checkout: its ledger goes to a directory of
# its own instead of .target-pinterest-audiences/ there.
_LEDGER = Path(tempfile.mkdtemp(prefix="tpa-sdk-standard-")) / "ledger.sqlite"
atexit.register(shutil.rmtree, _LEDGER.parent, ignore_errors=True)


class TargetAudienceFile(TargetFileTestTemplate):
    """An audience stream through the SDK's runner: list, members and STATE come out right."""

    name = "audience_file"

    @property
    def singer_filepath(self) -> Path:
        return Path(__file__).parent.parent / "data" / "audience.singer"

    def validate(self) -> None:
        (listed,) = [x for x in _EMULATOR.lists(AD_ACCOUNT) if x["name"] == "SDK Standard"]
        assert len(_EMULATOR.members(AD_ACCOUNT, listed["id"])) == 19
        assert _EMULATOR.spec_violations == []


standard_tests = SingerTestSuite(
    kind="target",
    tests=[
        TargetCliPrintsTest,
        TargetInvalidSchemaTest,
        TargetRecordBeforeSchemaTest,
        TargetAudienceFile,
    ],
)

TestTargetPinterestAudiences = get_target_test_class(
    TargetPinterestAudiences,
    config={
        "ad_account_id": AD_ACCOUNT,
        "access_token": "test-access-token",
        "api_url": _EMULATOR.url,
        "ledger_url": f"sqlite:///{_LEDGER}",
    },
    custom_suites=[standard_tests],
    include_target_tests=False,
)

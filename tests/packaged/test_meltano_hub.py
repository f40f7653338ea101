"""The Meltano path a user takes (issue 10 point 6, issue 11 point 9).

* ``meltano-hub.yml``, the loader's plugin definition in Meltano Hub's format for loaders,
  describes what the target's ``--about`` declares (capabilities, every setting with its kind,
  default and sensitivity) and every setting of the contract.
* The README's Meltano section: the block a user pastes into their own ``meltano.yml`` agrees
  with the Hub file, and Meltano accepts it.
* In a fresh Meltano project (``meltano init``, Meltano 4.4.1 from the venv that
  tests/packaged/test_meltano.py caches under ``.cache/``), the README's commands add the
  loader from the Hub file and configure it; the loader is installed from the built wheel
  (the project's ``pip_url`` is changed, never the definition file) and ``meltano run`` with a
  small extractor of the test's own loads the emulator; ``meltano state get`` then holds the
  list id.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_pinterest_audiences.emulator import DEFAULT_ACCESS_TOKEN, PinterestEmulator
from target_pinterest_audiences.target import TargetPinterestAudiences
from tests.conftest import AD_ACCOUNT, sha
from tests.distribution import (
    CONTRACT_SETTINGS,
    PENDING_SETTINGS,
    REPO,
    SECRETS,
    built_dist,
    clean_env,
)

HUB_FILE = REPO / "meltano-hub.yml"
LOADER = "target-pinterest-audiences"
README_VENV_BIN = f".meltano/loaders/{LOADER}/venv/bin/"

# Meltano Hub's format for loaders (the meltano/hub repository's schemas: plugin_definitions/
# loaders, common/common, common/loaders_specific, common/base_setting, hub_metadata).
HUB_REQUIRED = {"name", "namespace", "variant", "quality"}
HUB_KEYS = HUB_REQUIRED | {
    "capabilities", "pip_url", "description", "executable", "repo", "logo_url", "label",
    "settings", "docs", "python", "settings_group_validation", "commands", "dialect",
    "target_schema", "hidden", "requires", "maintenance_status", "domain_url", "keywords",
    "definition", "next_steps", "settings_preamble", "usage", "prereq",
    "supported_python_versions", "log_parser",
}  # fmt: skip
LOADER_CAPABILITIES = {
    "about", "stream-maps", "activate-version", "batch", "soft-delete", "hard-delete",
    "datatype-failsafe", "schema-flattening", "target-schema", "validate-records",
    "structured-logging",
}  # fmt: skip
SETTING_KEYS = {
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip",
    "documentation", "env", "value_processor", "value_post_processor", "oauth", "options",
    "docs", "hidden", "sensitive",
}  # fmt: skip
KINDS = {
    "oauth", "hidden", "password", "date_iso8601", "file", "email", "integer", "options",
    "object", "array", "boolean", "string", "decimal",
}  # fmt: skip
JSON_TYPE_KIND = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def _hub() -> dict[str, Any]:
    return yaml.safe_load(HUB_FILE.read_text())


def _hub_settings() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in _hub()["settings"]}


def _about() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences", "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(proc.stdout)


def _expected_kind(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "options"
    types = [t for t in prop["type"] if t != "null"]
    if types == ["string", "integer"]:  # digits, unquoted in YAML or not: a string to the Hub
        return "string"
    (json_type,) = types
    return JSON_TYPE_KIND[json_type]


# ---- the Hub file -------------------------------------------------------------------------


def test_hub_file_is_in_the_hubs_loader_format() -> None:
    hub = _hub()
    assert set(hub) >= HUB_REQUIRED, HUB_REQUIRED - set(hub)
    assert set(hub) <= HUB_KEYS, f"not in the Hub's loader format: {set(hub) - HUB_KEYS}"
    assert hub["name"] == LOADER
    assert hub["namespace"] == "target_pinterest_audiences"
    assert hub["executable"] == LOADER
    assert hub["pip_url"] == LOADER  # the package index; a project may point it elsewhere
    # The repository's public address is not known yet: no link to it, rather than a guess.
    assert "repo" not in hub and "docs" not in hub
    assert set(hub["capabilities"]) <= LOADER_CAPABILITIES
    names = [s["name"] for s in hub["settings"]]
    assert len(names) == len(set(names)), "a setting described twice"
    for setting in hub["settings"]:
        assert set(setting) <= SETTING_KEYS, (setting["name"], set(setting) - SETTING_KEYS)
        assert setting["kind"] in KINDS, setting["name"]
        assert setting.get("label") and setting.get("description"), setting["name"]


def test_hub_file_describes_what_the_target_declares() -> None:
    hub, about = _hub(), _about()
    settings = _hub_settings()
    declared = about["settings"]["properties"]
    own = TargetPinterestAudiences.config_jsonschema["properties"]

    assert hub["capabilities"] == about["capabilities"]
    assert {"about", "stream-maps", "structured-logging", "batch"} <= set(hub["capabilities"])
    for name in CONTRACT_SETTINGS:
        assert name in settings, f"the Hub file lacks the contract's {name}"
    for name in own:
        assert name in settings, f"the Hub file lacks the target's {name}"
    unknown = set(settings) - set(declared) - PENDING_SETTINGS
    assert not unknown, f"the Hub file describes settings the target does not have: {unknown}"
    for name, setting in settings.items():
        prop = declared.get(name)
        if prop is None:  # pending: what the contract says
            assert name == "streams" and setting["kind"] == "object"
            continue
        assert setting["kind"] == _expected_kind(prop), name
        if "enum" in prop:
            assert [o["value"] for o in setting["options"]] == prop["enum"], name
        assert setting.get("value") == prop.get("default"), f"{name}: default differs"
        if prop.get("secret") or name in SECRETS:
            assert setting.get("sensitive") is True, f"{name} is a secret"
    assert settings["ledger_url"].get("sensitive") is True  # a URL may hold a password


def test_hub_settings_groups_name_the_two_ways_to_authenticate() -> None:
    hub, about = _hub(), _about()
    groups = hub["settings_group_validation"]
    assert groups == [
        ["ad_account_id", "access_token"],
        ["ad_account_id", "refresh_token", "client_id", "client_secret"],
    ]
    for group in groups:
        assert set(about["settings"]["required"]) <= set(group)


def test_the_repos_own_meltano_yml_declares_the_loader_as_the_hub_file_does() -> None:
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == LOADER]
    hub = _hub()
    assert loader["pip_url"] == "-e ."  # development: this checkout
    for key in ("namespace", "executable", "capabilities", "settings_group_validation", "settings"):
        assert loader[key] == hub[key], f"meltano.yml and meltano-hub.yml differ in {key}"


def test_nothing_links_to_a_repository_address_nobody_knows() -> None:
    """The repository's public address is not known (issue 20.3): no file guesses one."""
    pattern = re.compile(r"(?:github\.com|githubusercontent\.com)/[\w.-]+/target-pinterest")
    for name in ("pyproject.toml", HUB_FILE.name, "README.md", "meltano.yml"):
        assert not pattern.search((REPO / name).read_text()), name
    assert "urls" not in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


# ---- the README's Meltano section ---------------------------------------------------------


def _meltano_section() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Meltano\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, "README.md has no '## Meltano' section"
    return match.group(1)


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", _meltano_section(), re.M | re.S)


def _pasted_block() -> dict[str, Any]:
    for block in _blocks("yaml"):
        parsed = yaml.safe_load(block)
        if isinstance(parsed, dict) and "plugins" in parsed:
            return parsed
    raise AssertionError("the Meltano section has no meltano.yml block with 'plugins'")


def _user_commands() -> list[str]:
    """The first bash block of the section: what a user types, one command a line."""
    block = _blocks("bash")[0].replace("\\\n", " ")
    return [" ".join(line.split()) for line in block.splitlines() if line.strip()]


def test_readme_shows_the_hub_path_first() -> None:
    section = _meltano_section()
    commands = _user_commands()
    assert commands[0] == 'export TPA="$PWD"'  # in the checkout: its path, for the others
    assert commands[1] == (
        f'meltano add --plugin-type loader {LOADER} --from-ref "$TPA/{HUB_FILE.name}" --no-install'
    )
    assert commands[2].startswith("sed -i.bak ") and commands[3] == "meltano install"
    assert section.index(commands[1]) < section.index("```yaml"), "the Hub path comes first"
    assert any(c.startswith("meltano run ") and c.endswith(f" {LOADER}") for c in commands)
    assert any(c.startswith("meltano state get ") for c in commands)
    # the wheel the README names is the one `python -m build` makes of this version
    from target_pinterest_audiences import __version__

    assert f"dist/target_pinterest_audiences-{__version__}-py3-none-any.whl" in section


def test_readme_block_agrees_with_the_hub_file_and_the_target() -> None:
    pasted = _pasted_block()
    (loader,) = pasted["plugins"]["loaders"]
    hub, hub_settings, about = _hub(), _hub_settings(), _about()
    for key in ("name", "namespace", "executable", "capabilities", "settings_group_validation"):
        assert loader[key] == hub[key], key
    assert "structured-logging" in loader["capabilities"]
    assert loader["pip_url"] == LOADER, loader["pip_url"]
    settings = {s["name"]: s for s in loader["settings"]}
    assert list(settings) == list(hub_settings), "the block must name the Hub file's settings"
    declared = about["settings"]["properties"]
    for name, setting in settings.items():
        assert setting["kind"] == hub_settings[name]["kind"], name
        assert setting.get("sensitive", False) == hub_settings[name].get("sensitive", False), name
        assert setting.get("value") == hub_settings[name].get("value"), name
        options = [o["value"] for o in setting.get("options", [])]
        assert options == [o["value"] for o in hub_settings[name].get("options", [])], name
        if declared.get(name, {}).get("secret"):
            assert setting.get("sensitive") is True, f"{name} is a secret"
    for name in SECRETS:
        assert settings[name]["sensitive"] is True
    config = loader.get("config", {})
    assert set(config) <= set(settings), set(config) - set(settings)
    assert isinstance(config.get("ad_account_id", ""), str), "ad_account_id quoted in YAML"


# ---- a fresh Meltano project --------------------------------------------------------------

TAP = "tap-audience-file"
TAP_SCRIPT = '''#!/usr/bin/env python3
"""A minimal Singer tap: one stream of audience rows from the JSONL file at config `path`."""
import argparse, json, sys

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--state")
args = parser.parse_args()
with open(args.config) as f:
    config = json.load(f)
stream = config["stream"]
fields = ("segment_name", "email", "action")
schema = {"type": "object", "properties": {k: {"type": ["string", "null"]} for k in fields}}
out = [{"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": []}]
with open(config["path"]) as f:
    rows = [json.loads(line) for line in f if line.strip()]
out += [{"type": "RECORD", "stream": stream, "record": row} for row in rows]
out.append({"type": "STATE", "value": {"bookmarks": {stream: {"rows": len(rows)}}}})
sys.stdout.write("".join(json.dumps(m) + "\\n" for m in out))
'''
TAP_DEFINITION = {
    "name": TAP,
    "namespace": "tap_audience_file",
    "executable": f"./{TAP}",  # no pip_url: Meltano runs it from the project directory
    "capabilities": ["state"],
    "settings": [{"name": "path", "kind": "string"}, {"name": "stream", "kind": "string"}],
}


class Project:
    def __init__(self, meltano: Path, root: Path, env: dict[str, str]) -> None:
        self.meltano, self.root, self.env = meltano, root, env

    def shell(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A README command as a user's shell runs it (variables expanded), Meltano on PATH."""
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, (
            f"{command} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
        return proc

    def yaml(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "meltano.yml").read_text())

    def write_yaml(self, data: dict[str, Any]) -> None:
        (self.root / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def _new_project(tmp_path: Path, name: str, **env: str) -> Project:
    from tests.packaged.test_meltano import _cache_lock, _meltano_venv

    with _cache_lock():  # shared with tests/packaged/test_meltano.py: one Meltano install
        meltano = _meltano_venv()
    environment = clean_env(
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        PATH=f"{meltano.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **env,
    )
    environment = {k: v for k, v in environment.items() if not k.startswith("MELTANO_DATABASE")}
    Project(meltano, tmp_path, environment).shell(f"meltano init {name} --no-usage-stats")
    return Project(meltano, tmp_path / name, environment)


def _set_pip_url(project: Project, pip_url: str) -> None:
    """What a user does to install from elsewhere: the project's pip_url, not the Hub file."""
    data = project.yaml()
    (loader,) = data["plugins"]["loaders"]
    loader["pip_url"] = pip_url
    project.write_yaml(data)


@pytest.mark.meltano
def test_fresh_project_adds_the_loader_from_the_hub_file_and_runs_a_pipeline(
    tmp_path: Path, emulator: PinterestEmulator
) -> None:
    hub_before = HUB_FILE.read_bytes()
    checkout = built_dist().source  # a clean copy of this checkout, as a user's clone would be
    project = _new_project(tmp_path, "fresh", PINTEREST_ACCESS_TOKEN=DEFAULT_ACCESS_TOKEN)
    ran: list[str] = []

    def readme(prefix: str, **replace: str) -> subprocess.CompletedProcess[str]:
        (command,) = [c for c in _user_commands() if c.startswith(prefix)]
        for old, new in replace.items():
            command = command.replace(old, new)
        ran.append(command)
        started = time.monotonic()
        proc = project.shell(command)
        sys.stderr.write(f"[test_meltano_hub] {command[:60]}: {time.monotonic() - started:.1f}s\n")
        return proc

    # The user's commands as the README writes them: the first in the checkout.
    first = _user_commands()[0]
    exported = subprocess.run(
        ["bash", "-c", f"{first} && printf %s \"$TPA\""],
        cwd=checkout, capture_output=True, text=True, check=True,
    )  # fmt: skip
    ran.append(first)
    assert Path(exported.stdout) == checkout
    project.env["TPA"] = exported.stdout
    readme("meltano add ")
    data = project.yaml()
    assert list(data["plugins"]) == ["loaders"], "added as something else than a loader too"
    (loader,) = data["plugins"]["loaders"]
    assert loader["name"] == LOADER and loader["pip_url"] == LOADER
    assert [s["name"] for s in loader["settings"]] == list(_hub_settings())
    listed = project.shell(f"meltano config list {LOADER}").stdout
    assert "OWNER" not in listed and "github.com" not in listed, listed[-500:]
    readme("sed ")
    assert project.yaml()["plugins"]["loaders"][0]["pip_url"] == str(checkout)
    readme("meltano install")
    readme("meltano config set target-pinterest-audiences ad_account_id")
    readme("meltano config set target-pinterest-audiences access_token")
    env_file = (project.root / ".env").read_text()
    assert f"TARGET_PINTEREST_AUDIENCES_ACCESS_TOKEN='{DEFAULT_ACCESS_TOKEN}'" in env_file
    assert DEFAULT_ACCESS_TOKEN not in (project.root / "meltano.yml").read_text()

    # A small extractor of the test's own, reading a local file.
    (project.root / TAP).write_text(TAP_SCRIPT)
    (project.root / TAP).chmod(0o755)
    (project.root / "tap.yml").write_text(yaml.safe_dump(TAP_DEFINITION))
    project.shell(f"meltano add --plugin-type extractor {TAP} --from-ref tap.yml --no-install")
    addresses = [f"Hub{n}@Example.com" for n in range(6)]
    rows = [{"segment_name": "From the Hub file", "email": a} for a in addresses]
    (project.root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project.shell(f"meltano config set {TAP} path rows.jsonl")
    project.shell(f"meltano config set {TAP} stream holiday_shoppers")
    project.shell(f"meltano config set {LOADER} api_url {emulator.url}")

    named = re.findall(re.escape(README_VENV_BIN) + r"([\w-]+)", _meltano_section())
    assert named, f"the README names no command in {README_VENV_BIN}"
    for executable in named:
        assert (project.root / README_VENV_BIN / executable).exists(), executable
    about = json.loads(project.shell(f"meltano invoke {LOADER} --about --format json").stdout)
    assert about["capabilities"] == _hub()["capabilities"]

    readme("meltano run ", **{"tap-postgres": TAP})
    (customer_list,) = emulator.lists(AD_ACCOUNT)
    assert customer_list["name"] == "From the Hub file"
    assert emulator.members(AD_ACCOUNT, customer_list["id"]) == {sha(a.lower()) for a in addresses}
    (audience,) = emulator.audiences(AD_ACCOUNT)

    got = readme("meltano state get ", **{"tap-postgres": TAP})
    state = json.loads(got.stdout.strip().splitlines()[-1])["singer_state"]
    entry = state["pinterest_audiences"]["holiday_shoppers"]
    assert entry["customer_list_id"] == customer_list["id"]
    assert entry["audience_id"] == audience["id"]
    assert state["bookmarks"] == {"holiday_shoppers": {"rows": len(rows)}}
    assert len(ran) == len(_user_commands()), "every command the README shows was run"
    assert HUB_FILE.read_bytes() == hub_before


@pytest.mark.meltano
def test_meltano_accepts_the_readme_block(tmp_path: Path) -> None:
    project = _new_project(
        tmp_path, "pasted", TARGET_PINTEREST_AUDIENCES_CLIENT_SECRET="pasted-secret-value"
    )
    data = project.yaml()
    data["plugins"] = _pasted_block()["plugins"]
    project.write_yaml(data)
    listed = project.shell(f"meltano config list {LOADER} --all").stdout
    for name in _hub_settings():
        assert re.search(rf"^{name}\b", listed, re.M), f"meltano config list lacks {name}"
    assert "pasted-secret-value" not in listed  # sensitive: redacted
    assert re.search(r"^client_secret\b.*redacted", listed, re.M | re.I), listed
    printed = json.loads(project.shell(f"meltano config print {LOADER} --format json").stdout)
    assert printed["ad_account_id"] == AD_ACCOUNT
    assert printed["api_url"] == "https://api.pinterest.com/v5"
    (add,) = [c for c in _user_commands() if c.startswith("meltano add ")]
    assert shlex.split(add)[1:4] == ["add", "--plugin-type", "loader"]

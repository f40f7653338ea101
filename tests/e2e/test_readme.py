"""The README a user copies from (issues 11.10, 20.3-4): its blocks work; what they name exists.

The Meltano blocks are run by tests/packaged/test_meltano_hub.py; here: the two first commands
(the demo run), the order a user reads in, the stream maps example (run through the CLI, in
both sync modes), the emulator section (its command, flags, default token and ad account, and
control endpoints), no placeholder anywhere a user copies from (the README's code, the Hub
definition, meltano.yml, pyproject.toml), the files and URLs they name, and the layout tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from target_pinterest_audiences.emulator import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_REFRESH_TOKEN,
    PinterestEmulator,
)
from tests.conftest import AD_ACCOUNT, REPO, TargetRunner, record_message, schema_message, sha

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    start = README.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    rest = README[start + len(heading) + 2 :]
    end = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_first_two_commands_exist() -> None:
    first, second = blocks(README[: README.index("\n---\n")], "bash")
    assert "scripts/demo.py" in first and (REPO / "scripts" / "demo.py").is_file()
    assert second.strip() == "scripts/test.sh" and (REPO / "scripts" / "test.sh").is_file()
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_demo_succeeds_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # 20.6: its temporary config (and the target's own directory) are removed at the end.
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Demo succeeded." in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sync_mode", ["explicit", "mirror"])
def test_the_stream_maps_example_splits_one_stream_into_lists(
    target: TargetRunner, emulator: PinterestEmulator, sync_mode: str
) -> None:
    (example,) = blocks(section("## One stream, several lists"), "json")
    config = json.loads(example)
    names = ["Holiday Shoppers", "Lapsed Customers"]
    messages = [schema_message("audience")]
    messages += [
        record_message("audience", segment_name=names[n % 2], email=f"user{n}@example.com")
        for n in range(10)
    ]
    run = target.run(messages, sync_mode=sync_mode, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.state["pinterest_audiences"]) == {"holiday_shoppers", "lapsed_customers"}
    lists = {item["name"]: item["id"] for item in emulator.lists(AD_ACCOUNT)}
    assert set(lists) == set(names)
    for k, name in enumerate(names):
        expected = {sha(f"user{n}@example.com") for n in range(k, 10, 2)}
        assert emulator.members(AD_ACCOUNT, lists[name]) == expected


def test_the_emulator_section_names_what_exists(emulator: PinterestEmulator) -> None:
    text = section("## The emulator, for your own pipeline tests")
    command = shutil.which("pinterest-emulator", path=str(Path(sys.executable).parent))
    assert command is not None, "the console script is installed beside the target"
    assert "pinterest-emulator --port 8765" in text
    help_text = subprocess.run(
        [command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in set(re.findall(r"`(--[a-z][a-z-]+)", text)) - {"--flag"}:
        assert flag in help_text, f"the README shows {flag}, which --help does not know"
    for value in (DEFAULT_ACCESS_TOKEN, DEFAULT_REFRESH_TOKEN, DEFAULT_CLIENT_ID, AD_ACCOUNT):
        assert f"`{value}`" in text
    endpoints = re.findall(r"\| `((?:GET|POST|DELETE)[^`]*) (/_emulator/[a-z_/{}]+)`", text)
    assert len(endpoints) >= 8
    for methods, path in endpoints:
        method = methods.split()[0]
        concrete = path.replace("{id}", "1")
        request = urllib.request.Request(
            emulator.root_url + concrete,
            method=method,
            data=b"{}" if method == "POST" else None,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        # 400 is fine (the body is empty here); 404 would mean the endpoint does not exist,
        # 405 that it does not take this method
        assert status != 405 and (status != 404 or "{id}" in path), f"{method} {path} -> {status}"
    emulator.reset()  # the probes above seeded and reset nothing of the tests' state


# ---- 20.3-4: where a user starts, and nothing to fill in -------------------------------------

# What a user would have to replace before a command or a file works: a GitHub owner, a
# <name> to fill in, a path or a value to make up.
PLACEHOLDER = re.compile(r"\bOWNER\b|<[A-Za-z][^<>\n]*>|/path/to/|\b[Yy]our[-_]|YOUR_|CHANGEME")
# Hosts the files may link to (checked by hand: they exist; the tests have no internet).
KNOWN_HOSTS = {
    "hub.meltano.com", "sdk.meltano.com", "developers.pinterest.com", "api.pinterest.com",
    "127.0.0.1", "schemathesis.readthedocs.io",
}  # fmt: skip
COPIED_FILES = ("meltano-hub.yml", "meltano.yml", "pyproject.toml")


def copied_from() -> dict[str, str]:
    """Every piece of text a user copies: the README's code (blocks and spans), whole files."""
    pieces = {
        f"README block {n}": b
        for n, b in enumerate(re.findall(r"```[a-z]*\n(.*?)```", README, re.S))
    }
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    pieces.update({f"README `{s}`": s for s in re.findall(r"`([^`\n]+)`", prose)})
    pieces.update({name: (REPO / name).read_text() for name in COPIED_FILES})
    return pieces


def test_the_readme_starts_where_users_start() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:4] == ["What it does", "Meltano", "Settings", "Mirror mode"], headings
    assert headings[-2:] == ["Development", "Speed and memory"], headings
    assert README.index("### Add the loader to your Meltano project") < len(README) // 4


def test_nothing_a_user_copies_holds_a_placeholder() -> None:
    for where, text in copied_from().items():
        found = PLACEHOLDER.search(text)
        assert found is None, f"{where}: {found.group()!r}" if found else ""


def test_every_url_names_a_known_host_and_no_repository_address_is_guessed() -> None:
    seen = 0
    for where, text in {
        "README.md": README,
        **{n: (REPO / n).read_text() for n in COPIED_FILES},
    }.items():
        for url in re.findall(r"https?://[^\s)`\"'<>]+", text):
            host = urllib.parse.urlsplit(url).hostname
            assert host in KNOWN_HOSTS, f"{where}: {url}"
            seen += 1
    assert seen >= 5
    hub = (REPO / "meltano-hub.yml").read_text()
    assert not re.search(r"^(repo|docs):", hub, re.M), "the repository's address is not known yet"


def test_every_file_the_readme_names_exists() -> None:
    named = set(
        re.findall(
            r"(?<![\w./$-])((?:scripts|tests|target_pinterest_audiences|\.ci|docs)/[\w./-]*[\w/])",
            README,
        )
    )
    named |= {name for name in (*COPIED_FILES, "LICENSE") if f"`{name}`" in README}
    assert len(named) >= 8
    for name in named:
        assert (REPO / name).exists(), name


def test_the_layout_tree_is_true() -> None:
    block = re.search(r"```\n(target_pinterest_audiences/\n.*?)```", README, re.S)
    assert block, "the README has no layout tree"
    shown: set[str] = set()
    parents: list[str] = []
    for line in block.group(1).splitlines()[1:]:
        entry = re.match(r"^([│ ]*)[├└]── ((?:[\w.]+/?)(?:, [\w.]+/?)*)", line)
        if entry is None:
            continue
        parents = parents[: len(entry.group(1)) // 4]
        names = entry.group(2).split(", ")
        for name in names:
            path = "/".join(["target_pinterest_audiences", *parents, name.rstrip("/")])
            assert (REPO / path).exists(), f"the layout tree shows {path}, which does not exist"
            shown.add(path)
        if names[-1].endswith("/"):
            parents.append(names[-1].rstrip("/"))
    package = REPO / "target_pinterest_audiences"
    for path in package.iterdir():
        if path.name.startswith("__") or path.name == "py.typed":
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            assert str(path.relative_to(REPO)) in shown, f"the layout tree lacks {path.name}"

"""target-pinterest-audiences: a Singer target that loads audiences into Pinterest."""

# The one place the version is written: pyproject.toml reads it (setuptools `dynamic`), and
# `--about` / `--version` read the installed metadata that it becomes.
__version__ = "0.1.0"

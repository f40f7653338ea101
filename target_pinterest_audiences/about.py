"""`--about` in plain text, with what each setting means (the SDK's own text lists names only).

The other formats (`--format json`, `--format markdown`) stay the SDK's.
"""

from __future__ import annotations

import textwrap

from singer_sdk import about

WIDTH = 100


class DescribedText(about.TextFormatter, format_name="text-described"):
    """The SDK's text, with each setting's title, default, whether it is required or secret,
    and its description."""

    def format_about(self, about_info: about.AboutInfo) -> str:
        head = super().format_about(about_info).partition("\nSettings:\n")[0]
        settings = about_info.settings
        required = set(settings.get("required", []))
        lines = [head, "Settings:"]
        for name, schema in settings.get("properties", {}).items():
            marks = [
                m
                for m, on in (("required", name in required), ("secret", schema.get("secret")))
                if on
            ]
            title = schema.get("title")
            lines.append(
                f"  - {name}"
                + (f" ({', '.join(marks)})" if marks else "")
                + (f": {title}" if title else "")
            )
            types = [k for k in _types(schema) if k != "null"]
            if "enum" in schema:
                lines.append(
                    f"    Values: {', '.join(str(v) for v in schema['enum'] if v is not None)}"
                )
            elif types:
                lines.append(f"    Type: {' or '.join(types)}")
            if "default" in schema:
                lines.append(f"    Default: {schema['default']}")
            env = about_info.env_var_prefix + name.upper().replace("-", "_")
            lines.append(f"    Environment variable: {env}")
            if schema.get("description"):
                lines += textwrap.wrap(
                    schema["description"],
                    WIDTH,
                    initial_indent="    ",
                    subsequent_indent="    ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
        return "\n".join(lines)


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [str(k) for k in kind]
    return []

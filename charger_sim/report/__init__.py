"""Reports of a run: JSON, JUnit XML and a self-contained HTML page (inline CSS and SVG).

Libraries build the text; the CLI decides where it goes (a file, or stdout for ``-``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .html import html_report
from .jsonout import suite_dict, suite_json, without_wall_time
from .junit import junit_xml
from .meta import RunInfo, versions

__all__ = [
    "RunInfo",
    "html_report",
    "junit_xml",
    "suite_dict",
    "suite_json",
    "versions",
    "without_wall_time",
    "write_text",
]


def write_text(path: Path, text: str, what: str) -> None:
    """Write a report file; a path that cannot be written is the user's to fix (exit 2)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot write ({err.strerror or err})") from err

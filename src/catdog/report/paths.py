"""Paths and store URIs as a published page may show them: never a local absolute path
(relative to the project, the home folder as ~, else only the last two parts) and never a
password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from catdog import PROJECT_ROOT
from catdog.tracking import redact


def shown_path(path: str) -> str:
    """PATH as a page may show it: relative to the project or home, else its last two parts."""
    p = Path(path)
    if not p.is_absolute():
        return path
    for base, prefix in ((PROJECT_ROOT.resolve(), ""), (Path.home().resolve(), "~/")):
        if p.resolve().is_relative_to(base):
            return prefix + str(p.resolve().relative_to(base))
    return ".../" + "/".join(p.parts[-2:])


def shown(location: str | None) -> str | None:
    """A path, a file:// or sqlite:/// URI, or a server URI (its password redacted)."""
    if not location:
        return location
    for scheme in ("file://", "sqlite:///"):
        if location.startswith(scheme):
            return scheme + shown_path(location[len(scheme) :])
    if urlparse(location).scheme in ("http", "https", "postgresql", "mysql"):
        return redact(location)
    return shown_path(location)

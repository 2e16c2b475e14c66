"""Every file and module the code and the docs cite exists: a reference that leads nowhere
(a doc left out of the repository, a module moved or renamed) fails here."""

import importlib
import re
from pathlib import Path

import pytest

from catdog import PROJECT_ROOT

pytestmark = pytest.mark.unit

TOP = ("src", "docs", "bench", "conf", "tests", "experiments", ".ci")
SOURCES = [
    *sorted((PROJECT_ROOT / "src").rglob("*.py")),
    *sorted((PROJECT_ROOT / "src").rglob("*.j2")),
    *sorted((PROJECT_ROOT / "bench").glob("*.py")),
    *sorted((PROJECT_ROOT / "conf").rglob("*.yaml")),
    *sorted((PROJECT_ROOT / "docs").glob("*.md")),
    PROJECT_ROOT / "README.md",
    PROJECT_ROOT / "Makefile",
]  # not CHANGELOG.md: history names files as they were then
MODULE = re.compile(r"\bcatdog(?:\.[a-z_][a-z0-9_]*)+")
PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w./-]*\w)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
BARE = re.compile(r"(?<![\w/.-])([a-z][\w-]*\.(?:md|py))\b")
EVERY_FILE = {p.name for p in PROJECT_ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}


def _module_exists(dotted: str) -> bool:
    """catdog.a.b.c names a module, or an attribute of the longest module it starts with."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        try:
            thing = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for name in parts[end:]:
            if not hasattr(thing, name):
                return False
            thing = getattr(thing, name)
        return True
    return False


def _broken(source: Path) -> list[str]:
    text = source.read_text()
    out = [m for m in set(MODULE.findall(text)) if m != "catdog.egg" and not _module_exists(m.rstrip("."))]
    for path in set(PATH.findall(text)):
        if not (PROJECT_ROOT / path.rstrip(".")).exists():
            out.append(path)
    if source.suffix == ".md":
        for link in set(LINK.findall(text)):
            if "://" not in link and not link.startswith("mailto:") and not (source.parent / link).exists():
                out.append(link)
    for name in set(BARE.findall(text)):
        if name not in EVERY_FILE:
            out.append(name)
    return sorted(out)


def test_every_cited_file_and_module_exists():
    broken = {str(s.relative_to(PROJECT_ROOT)): b for s in SOURCES if (b := _broken(s))}
    assert broken == {}

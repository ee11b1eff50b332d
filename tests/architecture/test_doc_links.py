"""Every docs/ file that the code, the bot's files or the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["bot", "connectors", "handoff", "actions", "rasa_addons", "scripts", "docs", "data"]
FILES = ["README.md", "domain.yml", "config.yml", "endpoints.yml", "credentials.yml"]
DOC_RE = re.compile(r"docs/[A-Za-z0-9_.-]+\.(?:md|json)")


def test_every_named_doc_exists() -> None:
    paths = [ROOT / f for f in FILES]
    for folder in SOURCES:
        paths += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yml"}]
    missing = {
        f"{path.relative_to(ROOT)} -> {name}"
        for path in paths
        for name in DOC_RE.findall(path.read_text(errors="replace"))
        if not (ROOT / name).exists()
    }
    assert not missing, sorted(missing)

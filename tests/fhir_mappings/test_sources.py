"""fhir_mappings stands alone: every source it cites as a tag resolves in PROFILE.md, and no code,
data file or doc of the package points at a document outside the repository."""
from __future__ import annotations

import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_mappings.identifiers import sources_markdown

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"
# A tag: [Noridian-KX], [MCPM10.6], [pyx12-837P]; not a Markdown link, a character range or a word.
TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9.]*(?:-[A-Za-z0-9.]+)*)\](?!\()")
OUTSIDE = re.compile(r"/work/|\.\./shared|\bshared/reference|design\.md|\breference §|\bissue #?\d+", re.IGNORECASE)


def _is_tag(text: str) -> bool:
    return bool(re.search(r"[A-Z0-9]", text)) and not re.fullmatch(r"[A-Z]-[A-Z].*", text)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _texts() -> Iterator[tuple[str, str]]:
    """(file, text) for the prose of the package: docstrings, comments and strings of the code,
    strings of the data files, and PROFILE.md."""
    for path in sorted(PACKAGE.glob("*.py")):
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                yield path.name, tok.string
    for path in sorted((PACKAGE / "data").glob("*.json")):
        for text in _strings(json.loads(path.read_text())):
            yield path.name, text
    yield "PROFILE.md", (PACKAGE / "PROFILE.md").read_text()


def _listed() -> set[str]:
    """The tags PROFILE.md resolves: its Sources table and the identifier table's source list."""
    doc = (PACKAGE / "PROFILE.md").read_text()
    assert "\n## Sources\n" in doc, "PROFILE.md has no Sources section"
    sources = doc.split("\n## Sources\n", 1)[1]
    listed = set(re.findall(r"^\| ([^|\s]+) \| \S", sources, re.MULTILINE)) - {"tag"}
    return listed | set(re.findall(r"^\* \[([^\]]+)\]", sources_markdown(), re.MULTILINE))


def test_every_cited_tag_resolves_in_profile() -> None:
    listed = _listed()
    for name, text in _texts():
        for tag in filter(_is_tag, TAG.findall(text)):
            assert tag in listed, f"{name} cites [{tag}], which PROFILE.md's Sources do not list"


def test_nothing_points_outside_the_repository() -> None:
    for name, text in _texts():
        hit = OUTSIDE.search(text)
        assert hit is None, f"{name} refers to {hit.group(0)!r}, outside the repository: {text[:120]!r}"

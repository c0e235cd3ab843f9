"""The user docs (README.md, docs/*.md, demo/README.md) link only to files a user has.

Every relative link must resolve to a file or folder inside the repository (never out of it
through `..`), and an anchor into a markdown file must name one of its headings. Docs never point
at material users do not get with the repository.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]

# Phrases that mean a doc points at material outside the repository.
FORBIDDEN = ("../shared", "team notes")

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target "optional title") and ![alt](target); the target stops at whitespace or ')'.
_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"<a\s[^>]*href\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def doc_files(root: Path) -> list[Path]:
    """The documents users read: the README, every page under docs/, and the demo's README."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "demo" / "README.md"]
    return [f for f in files if f.is_file()]


def _prose(text: str) -> str:
    """Markdown without code: brackets inside code blocks and code spans are not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return _MARKDOWN_LINK.findall(prose) + _HTML_LINK.findall(prose)


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces -> '-',
    repeated headings numbered (-1, -2, ...)."""
    anchors: set[str] = set()
    for title in _HEADING.findall(_FENCE.sub("", markdown)):
        title = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", title)  # code marks, bold, links -> text
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(doc: Path, root: Path) -> list[str]:
    """'target: why' for every relative link of `doc` that does not resolve inside `root`."""
    root = root.resolve()
    problems = []
    for target in links(doc.read_text(encoding="utf-8")):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # web addresses are not checked here
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / unquote(path_part)).resolve() if path_part else doc.resolve()
        if path_part.startswith("/"):
            problems.append(f"{target}: absolute path; link relative to the document")
        elif not resolved.is_relative_to(root):
            problems.append(f"{target}: points outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file or folder")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{target}: {resolved.name} has no heading with anchor #{anchor}")
    return problems


def forbidden_mentions(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8").lower()
    return [phrase for phrase in FORBIDDEN if phrase in text]


def test_the_docs_exist():
    names = {str(f.relative_to(REPO)) for f in doc_files(REPO)}
    for required in ("README.md", "docs/architecture.md", "docs/performance.md", "docs/models.md",
                     "docs/long-video.md", "docs/pose.md"):
        assert required in names, f"{required} is missing"


@pytest.mark.parametrize("doc", doc_files(REPO), ids=lambda f: str(f.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc):
    assert broken_links(doc, REPO) == []


@pytest.mark.parametrize("doc", doc_files(REPO), ids=lambda f: str(f.relative_to(REPO)))
def test_docs_point_at_nothing_users_lack(doc):
    assert forbidden_mentions(doc) == []


def test_readme_is_a_short_user_guide():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 160, f"README.md has {len(lines)} lines; move depth into docs/"


def test_checker_finds_planted_problems(tmp_path):
    """The checker itself: a planted broken link, a way out of the repository, a wrong anchor and a
    forbidden mention are all reported; good links, web links and code are not."""
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "workflows").mkdir()
    (tmp_path / "outside.md").write_text("# Outside\n")
    (repo / "docs" / "guide.md").write_text("# Guide\n\n## Long video, 1080p\n\ntext\n")
    readme = repo / "README.md"
    readme.write_text(
        "# Title\n"
        "[ok](docs/guide.md) [ok anchor](docs/guide.md#long-video-1080p) [folder](workflows/)\n"
        "[web](https://example.com/x.md) [self](#title) <a href=\"docs/guide.md\">html ok</a>\n"
        "[missing](docs/nope.md) [escape](../outside.md) [bad anchor](docs/guide.md#nowhere)\n"
        "<a href=\"docs/gone.md\">html broken</a>\n"
        "`[not a link](in/code.md)`\n"
        "```\n[also not](a/link.md)\n```\n"
        "See the team notes.\n"
    )
    problems = broken_links(readme, repo)
    assert [p.split(":")[0] for p in problems] == ["docs/nope.md", "../outside.md", "docs/guide.md#nowhere",
                                                   "docs/gone.md"]
    assert "outside the repository" in problems[1]
    assert forbidden_mentions(readme) == ["team notes"]


def test_heading_anchors_follow_github():
    text = "# Kinema\n## Two commands\n## `kinema.run_sampling` (Python)\n## Two commands\n```\n# not a heading\n```\n"
    assert heading_anchors(text) == {"kinema", "two-commands", "kinemarun_sampling-python", "two-commands-1"}

"""The code cites only files inside the repository, and every ``docs/X.md`` it cites exists.

A newcomer must be able to follow every citation from a clone: no ``shared/docs/...`` pages of the
development machine, no ``env.md`` experiment numbers, no ``docs/`` page that was never written.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ("edgeprune", "exporters", "targets")
ALSO_CITING = ("bench",)  # bench's data default may sit beside the checkout; its citations may not
SUFFIXES = {".py", ".toml", ".md", ".txt", ".cfg"}

OUTSIDE = re.compile(r"shared/docs|\benv\.md\b|compress-review\.md")
OUTSIDE_PACKAGE = re.compile(r"\.\./shared\b|(?<![\w.])/work/")
DOCS_REF = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b")

# Citations in files other issue-17 branches are fixing at the same time (to docs/paper.md,
# docs/speed-notes.md, docs/arm.md). Delete an entry once its file is fixed on main.
PENDING: set[str] = set()  # files whose citation fix is still pending (none)


def _files(tops: tuple[str, ...]) -> list[Path]:
    out = []
    for top in tops:
        for p in sorted((ROOT / top).rglob("*")):
            rel = p.relative_to(ROOT).as_posix()
            if p.is_file() and p.suffix in SUFFIXES and "/results/" not in rel and "__pycache__" not in rel \
                    and ".egg-info" not in rel:
                out.append(p)
    return out


def _problems(path: Path, in_package: bool) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    bad = []
    for no, line in enumerate(text.splitlines(), 1):
        if OUTSIDE.search(line) or (in_package and OUTSIDE_PACKAGE.search(line)):
            bad.append(f"{no}: cites a file outside the repository: {line.strip()}")
        for name in DOCS_REF.findall(line):
            if not (ROOT / "docs" / name).is_file():
                bad.append(f"{no}: cites docs/{name}, which does not exist: {line.strip()}")
    return bad


CASES = [(p, True) for p in _files(PACKAGE)] + [(p, False) for p in _files(ALSO_CITING)]


@pytest.mark.parametrize("path,in_package", CASES, ids=[p.relative_to(ROOT).as_posix() for p, _ in CASES])
def test_citations_stay_in_the_repository(path: Path, in_package: bool) -> None:
    rel = path.relative_to(ROOT).as_posix()
    bad = _problems(path, in_package)
    if bad and rel in PENDING:
        pytest.xfail(f"{rel}: citation fix pending on another issue-17 branch")
    assert not bad, f"{rel}:\n" + "\n".join(bad)


def test_cited_docs_pages_exist() -> None:
    for name in ("paper.md", "speed-notes.md", "arm.md"):
        assert (ROOT / "docs" / name).is_file(), name


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    p = tmp_path / "x.py"
    p.write_text('"""see shared/docs/speed.txt"""\n"""docs/nowhere.md, docs/arm.md"""\nD = "../shared/x"\n')
    bad = _problems(p, in_package=True)
    assert [b.split(":")[0] for b in bad] == ["1", "2", "3"], bad
    assert "cites docs/nowhere.md" in bad[1] and "cites docs/arm.md" not in "".join(bad)
    assert [b.split(":")[0] for b in _problems(p, in_package=False)] == ["1", "2"]

"""Static facts about the repository that users and tools rely on; run by .ci/lint.

Each check returns a list of problems (empty when it holds); the script prints them and exits 1
if there are any. Nothing here imports absgrad: these facts do not depend on what the code does.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "absgrad"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def licence() -> list[str]:
    """The MIT licence is declared, shipped, and its text names the copyright holders."""
    project = PYPROJECT["project"]
    problems = []
    if project.get("license") != "MIT":
        problems.append(f"pyproject.toml: license is {project.get('license')!r}, not 'MIT'")
    if "LICENSE" not in project.get("license-files", []):
        problems.append("pyproject.toml: license-files does not list LICENSE")
    path = ROOT / "LICENSE"
    text = path.read_text() if path.is_file() else ""
    if not text.startswith("MIT License") or "the absgrad developers" not in text:
        problems.append("LICENSE: not the MIT text naming 'the absgrad developers'")
    return problems


def typing_marker() -> list[str]:
    """py.typed exists, is shipped as package data and the Typed classifier says so."""
    problems = []
    if not (PACKAGE / "py.typed").is_file():
        problems.append("src/absgrad/py.typed is missing")
    if "py.typed" not in PYPROJECT["tool"]["setuptools"]["package-data"]["absgrad"]:
        problems.append("pyproject.toml: package-data does not ship py.typed")
    if "Typing :: Typed" not in PYPROJECT["project"]["classifiers"]:
        problems.append("pyproject.toml: the classifier 'Typing :: Typed' is missing")
    return problems


def package_data() -> list[str]:
    """Every data file in the package (not Python) is shipped by a package-data pattern."""
    patterns = [p.split("/") for p in PYPROJECT["tool"]["setuptools"]["package-data"]["absgrad"]]

    def shipped(parts: tuple[str, ...]) -> bool:
        return any(
            len(parts) == len(pat)
            and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pat, strict=True))
            for pat in patterns
        )

    files = [
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    ]
    return [
        f"src/absgrad/{f.as_posix()}: no package-data pattern in pyproject.toml ships it"
        for f in sorted(files)
        if not shipped(f.parts)
    ]


def torch_bounds() -> list[str]:
    """torch and torchvision have an upper bound that admits the versions CI pins."""
    reqs = {r.name: r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}
    problems = []
    for name in ("torch", "torchvision"):
        spec = reqs[name].specifier
        if not any(s.operator == "<" for s in spec):
            problems.append(f"pyproject.toml: {name} needs an upper bound")
        for pins in ("requirements.txt", "requirements-dev.txt"):
            found = re.findall(rf"^{name}==(\S+)$", (ROOT / pins).read_text(), re.M)
            if not found:
                problems.append(f"{pins}: pins no {name}")
            elif not spec.contains(found[0]):
                problems.append(f"{pins}: pins {name}=={found[0]} outside {spec}")
    return problems


def _prose(path: Path) -> list[tuple[int, str]]:
    """The numbered lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((i, line))
    return lines


def docs_stand_alone() -> list[str]:
    """Docs speak to users: no pointers to internal specs, issue numbers or section marks."""
    bad = re.compile(r"\bSPEC\b|§|\b[Ii]ssues? #?\d+|\bthe issue\b")
    return [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in DOCS
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if bad.search(line)
    ]


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for _, line in _prose(path):
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def docs_links() -> list[str]:
    """Every relative link of the README and docs/ names a file that exists, and its
    ``#anchor`` a heading of that file."""
    problems = []
    for page in DOCS:
        for i, line in _prose(page):
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                file, _, anchor = target.partition("#")
                dest = (page.parent / file).resolve() if file else page
                where = f"{page.relative_to(ROOT)}:{i}: {target}"
                if not dest.exists():
                    problems.append(f"{where}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    problems.append(f"{where}: no heading with that anchor")
    return problems


def docs_paths() -> list[str]:
    """Every repository path the README and docs quote in backticks (tests/..., src/...) exists."""
    quoted = re.compile(r"`((?:src|tests|benchmarks|docs|\.ci)/[^`\s:]*)[^`]*`")
    return [
        f"{page.relative_to(ROOT)}:{i}: {path}: no such file or folder"
        for page in DOCS
        for i, line in enumerate(page.read_text().splitlines(), 1)
        for path in quoted.findall(line)
        if not (ROOT / path).exists()
    ]


CHECKS: list[Callable[[], list[str]]] = [
    licence,
    typing_marker,
    package_data,
    torch_bounds,
    docs_stand_alone,
    docs_links,
    docs_paths,
]


def main() -> int:
    failed = 0
    for check in CHECKS:
        problems = check()
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{check.__name__}: {status}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

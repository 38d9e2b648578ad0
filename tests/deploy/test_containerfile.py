"""The Containerfile, checked as far as it can be without building it (no container engine and no image
registry here): it installs the run-time lock with hashes and nothing else, copies only files that
exist and that .containerignore lets through, runs as a non-root user, and its entry point and
default command are the real CLI's."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.specifiers import SpecifierSet

from workplane.cli import build_parser
from workplane.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _all(name: str) -> list[str]:
    return [rest for word, rest in _instructions() if word == name]


def _exec_form(name: str) -> list[str]:
    [value] = _all(name)
    words: list[str] = tomllib.loads(f"v = {value}")["v"]  # a JSON array of strings
    return words


def _excluded(path: str, patterns: list[str]) -> bool:
    """.containerignore's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").removeprefix("**/")
        if any(fnmatch.fnmatch(c, glob) or fnmatch.fnmatch(Path(c).name, glob) for c in candidates):
            excluded = not negated
    return excluded


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".containerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_python_version_is_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock_header = (ROOT / "requirements" / "main.lock").read_text().splitlines()[1]
    [locked] = re.findall(r"--python-version (\d+\.\d+)", lock_header)
    for image in _all("FROM"):
        [version] = re.findall(r"python:(\d+\.\d+)", image)
        assert version == locked, image
        assert SpecifierSet(project["requires-python"]).contains(f"{version}.0"), image


def test_dependencies_come_from_the_lock_with_hashes_only() -> None:
    installs = [run for run in _all("RUN") for run in run.split("&&") if "pip install" in run]
    locks = []
    for command in installs:
        words = shlex.split(command)
        assert "--no-deps" in words, command  # nothing resolved: the lock has every package
        if "-r" in words:
            assert "--require-hashes" in words, command
            locks.append(Path(words[words.index("-r") + 1]).name)
        else:  # the project itself, built with the pinned setuptools, downloading nothing
            assert {"--no-build-isolation", "--no-index"} <= set(words), command
    assert locks == ["build.lock", "main.lock"]
    assert "dev.lock" not in (ROOT / "Containerfile").read_text()  # no test or lint tools in the image


def test_every_copied_file_exists_and_reaches_the_build() -> None:
    patterns = _ignore_patterns()
    sources = []
    for copy in _all("COPY"):
        words = copy.split()
        if any(w.startswith("--from") for w in words):
            continue
        sources += words[:-1]
    assert "requirements/main.lock" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _excluded(source, patterns), f"{source} is left out of the build by .containerignore"
    # Every file of the package goes in (package data included), and nothing built locally does.
    package = [p for p in (ROOT / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in package:
        relative = path.relative_to(ROOT).as_posix()
        assert _excluded(relative, patterns) == (".egg-info" in relative), relative
    for unwanted in (".venv/bin/python", "data/workplane.db", "tests/conftest.py", "requirements/dev.lock"):
        assert _excluded(unwanted, patterns), unwanted
    assert (ROOT / ".dockerignore").resolve() == (ROOT / ".containerignore").resolve()


def test_the_installed_package_holds_every_file_of_the_source(tmp_path: Path) -> None:
    """The project built as the image builds it — from what the Containerfile copies, with the
    installed setuptools, nothing downloaded — holds every file under ``src/workplane``. A data file
    that pyproject's package data leaves out is missing only from an installed copy (the image's),
    never from the editable one the other tests run: the reference description under ``api/spec``
    was, and ``/api/docs`` failed in the image."""
    context = tmp_path / "context"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for copy in _all("COPY"):
        *sources, destination = copy.split()
        if any(word.startswith("--from") for word in sources):
            continue
        target = context / destination.removeprefix("/src").strip("/")
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / Path(source).name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    built = subprocess.run(
        [*pip_wheel, "--no-index", "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("workplane-*.whl")
    installed = set(zipfile.ZipFile(wheel).namelist())
    source = ROOT / "src"
    files = [p for p in (source / "workplane").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = sorted({p.relative_to(source).as_posix() for p in files} - installed)
    assert missing == [], f"left out of the installed package (pyproject's package-data): {missing}"


def test_the_image_runs_the_workplane_command_as_a_user() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = _exec_form("ENTRYPOINT")
    assert entrypoint[0] in scripts
    args = build_parser().parse_args(entrypoint[1:] + _exec_form("CMD"))
    assert args.command == "serve"
    [user] = _all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit()  # numeric, so that runAsNonRoot can check it
    assert int(uid) != 0
    for env in _all("ENV"):
        for name in re.findall(r"(WORKPLANE_\w+)=", env):
            assert name.removeprefix("WORKPLANE_").lower() in Settings.model_fields, name
    assert "WORKPLANE_HOST=0.0.0.0" in " ".join(_all("ENV"))

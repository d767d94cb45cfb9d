"""The set-up promises of the README: two commands, one package list in two files, CI runs the tests."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from importlib import metadata

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> list[Requirement]:
    return [Requirement(line) for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_lock_pins_every_package_that_pyproject_asks_for_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    asked = [Requirement(r) for r in project["dependencies"]]
    asked += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    lock = _lock()
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in lock), "== pins only"
    here = {canonicalize_name(r.name): next(iter(r.specifier)).version for r in lock
            if r.marker is None or r.marker.evaluate()}  # the branch this interpreter installs
    for r in asked:
        name = canonicalize_name(r.name)
        assert name in here, f"{r.name} is in pyproject.toml but not in requirements.lock: run scripts/lock.sh"
        assert r.specifier.contains(here[name], prereleases=True), f"{r.name}: lock {here[name]} outside {r.specifier}"


def test_environment_yml_pins_the_same_versions_as_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [str(Requirement(r)) for r in conda_pip] == [str(r) for r in _lock()]
    assert "python=3.11" in env["dependencies"]


def test_this_environment_has_the_locked_versions():
    """What ./run_tests.sh installed is the lock (CI builds it from the lock on a clean checkout)."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {r.name: (installed.get(canonicalize_name(r.name)), str(r.specifier)) for r in _lock()
             if (r.marker is None or r.marker.evaluate()) and not r.specifier.contains(
                 installed.get(canonicalize_name(r.name), "0"), prereleases=True)}
    assert not wrong, f"installed (version, lock) differ: {wrong}"


def test_bootstrap_installs_from_the_lock_and_its_refresh_is_documented():
    boot = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"pip install .*-r \"\$_root/requirements.lock\"", boot)
    assert re.search(r"pip install .*--no-deps -e", boot)
    assert "scripts/lock.sh" in (ROOT / "README.md").read_text()


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\./\S+.*$", quick.split("```", 2)[1], flags=re.M)
    assert [c.split("#")[0].strip() for c in commands] == ["./run_all.sh", "./run_tests.sh"]
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == ["exec ./run_tests.sh"]


def test_the_licence_and_the_citation_agree_with_pyproject_and_name_the_paper():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "The Hetero-AE reproduction authors" in licence
    assert project["license"] in ({"text": "MIT"}, "MIT")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and str(cff["version"]) == project["version"]
    paper = cff["preferred-citation"]
    assert paper["type"] == "article" and paper["doi"] == "10.1109/TIP.2024.3381435"
    assert paper["title"] == "Anomaly Detection for Medical Images Using Heterogeneous Auto-Encoder"
    assert [a["family-names"] for a in paper["authors"]] == ["Lu", "Zhang", "Zhao", "Liu", "Wang", "Li"]
    assert (paper["journal"], paper["volume"], paper["year"]) == ("IEEE Transactions on Image Processing", 33, 2024)
    citation = (ROOT / "README.md").read_text().split("## Citation", 1)[1]
    assert "@article{" in citation and "doi     = {10.1109/TIP.2024.3381435}" in citation

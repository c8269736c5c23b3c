"""The project's metadata files agree with pyproject.toml: the citation file names the package's
version and license and cites the paper; the license file is the one pyproject ships."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_citation_file_matches_pyproject_and_cites_the_paper(project):
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the [sweep] extra (optuna)
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), key
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]
    assert [a["name"] for a in cff["authors"]] == [a["name"] for a in project["authors"]]
    paper = cff["preferred-citation"]
    assert paper["doi"] == "10.48550/arXiv.2510.25557"
    assert paper["url"] == "https://arxiv.org/abs/2510.25557"
    assert paper["title"] and paper["authors"]


def test_the_license_file_is_the_apache_text_pyproject_declares(project):
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a notice


def test_the_changelog_has_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text

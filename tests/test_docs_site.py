"""The documentation site: its examples run as written, and it builds strictly.

``tests/test_docs_examples.py`` runs the examples of the user-guide pages
written with their features; this module runs those of the site's own pages
(getting started, batch EM, reproducibility, compile time, migration) the same
way, one namespace per page in a temporary working directory, and builds the
whole site with ``mkdocs build --strict`` when the ``docs`` extra is
installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_doc_page

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: The site's pages with ``python`` blocks, and a line each must print.
PAGES = {
    "getting_started.md": "True 4\n[0.356 0.644]\n",
    "batch.md": "{'gaussianmixture__n_components': 2}\n",
    "reproducibility.md": "True True\n",
    "compile.md": "fit 2: ",
    "migration.md": "['ridge']\nTrue\nFitting the mixture model failed\n",
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_site_page_examples_run(page, tmp_path, monkeypatch):
    printed = run_doc_page(page, tmp_path, monkeypatch)
    assert "False" not in printed, f"docs/{page} printed a failed check:\n{printed}"
    assert PAGES[page] in printed, printed


def test_changelog_page_includes_the_changelog():
    assert (ROOT / "CHANGELOG.md").is_file()
    assert '--8<-- "CHANGELOG.md"' in (DOCS / "changelog.md").read_text()


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: every nav entry exists, every link and
    anchor resolves, and the API reference renders from the docstrings."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (site / "api" / "index.html").read_text()
    for name in ("fastem.GaussianMixture", "fastem.GaussianMixture.fit",
                 "fastem.GaussianMixture.save", "fastem.MiniBatchGaussianMixture.partial_fit",
                 "fastem.select.select", "fastem.SelectionResult", "fastem.CollapseWarning",
                 "fastem.load", "fastem.plot.components"):
        assert f'id="{name}"' in api, name
    assert ":class:<code>" not in api  # Sphinx roles are stripped by mkdocs_hooks.py
    assert "0.1.0" in (site / "changelog" / "index.html").read_text()

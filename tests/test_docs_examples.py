"""The code examples of the user-guide pages run as written."""

import pytest
from conftest import run_doc_page

#: Pages whose ``python`` blocks are complete programs (run in order, one
#: namespace per page).
PAGES = ["index.md", "online.md", "out_of_core.md", "select.md", "squarem.md", "dask.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    printed = run_doc_page(page, tmp_path, monkeypatch)
    if page == "online.md":
        assert "50 100000" in printed
    if page == "dask.md":
        assert "[ 0.  5. 10.]\n(2000000,) True" in printed

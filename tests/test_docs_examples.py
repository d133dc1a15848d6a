"""The code examples of the user-guide pages run as written."""

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages whose ``python`` blocks are complete programs (run in order, one
#: namespace per page).
PAGES = ["index.md", "online.md", "out_of_core.md", "select.md", "squarem.md", "dask.md"]


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    blocks = _blocks(page)
    assert blocks, f"docs/{page} has no python example"
    monkeypatch.chdir(tmp_path)  # examples may write files
    namespace = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks:
            exec(compile(code, f"docs/{page}", "exec"), namespace)
    if page == "online.md":
        assert "50 100000" in out.getvalue()
    if page == "dask.md":
        assert "[ 0.  5. 10.]\n(2000000,) True" in out.getvalue()

"""The code examples of the user-guide pages run as written."""

import re
from pathlib import Path

import pytest
from conftest import run_doc_page

#: Pages whose ``python`` blocks are complete programs (run in order, one
#: namespace per page).
PAGES = ["index.md", "online.md", "out_of_core.md", "select.md", "squarem.md", "dask.md",
         "discrete.md", "latent_class.md", "missing.md", "hmm.md", "bayesian.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    printed = run_doc_page(page, tmp_path, monkeypatch)
    if page == "online.md":
        assert "50 100000" in printed
    if page == "dask.md":
        assert "[ 0.  5. 10.]\n(2000000,) True" in printed
    if page == "discrete.md":  # published numbers: two coins, Hasselblad
        assert "False" not in printed, printed
        for line in ("[0.7967 0.5197]\n10 [0.5 0.5]\n", "[0.7899 0.5089]\n[0.5376 0.4624]\n",
                     "[0.3599 0.6401]\n[1.2561 2.6634]\n-1989.946\n", "{'n_components': 2}\n"):
            assert line in printed, printed
    if page == "missing.md":  # the outputs the page shows
        assert "[[ 2.  54.7]\n [ 4.3 80.1]]\n-3.478\nTrue\nTrue\nTrue\nTrue True\n" in printed, \
            printed
    if page == "latent_class.md":  # poLCA's maxima: carcinoma, gss82 (codes and strings)
        for line in ("2 -317.2568 ", "3 -293.705 ", "\n-2754.545\n[(3, 3)",
                     "interested']\n-2754.545\n"):
            assert line in printed, printed
    if page == "bayesian.md":  # every output block is what its example prints, exactly
        text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
        shown = re.findall(r"```python\n.*?```\n\n```text\n(.*?)```", text, flags=re.DOTALL)
        assert "".join(shown) == printed, printed
        assert "2 True 63\n" in printed and "True True True\n" in printed
    if page == "hmm.md":  # Old Faithful's alternation, BIC, and the checks the page prints
        assert "False" not in printed, printed
        for line in ("True 16\n[2.04 4.29]\n[0.26 0.41]\n[[0.062 0.938]\n [0.521 0.479]]\n"
                     "[0.357 0.643]\n",
                     "LSLSLSLLSLSLLSLSSLSLSSLLLLSLLLLLLLLSSLSL\n",
                     "2 -243.594 526.43\n3 -213.324 505.13\n4 -201.645 532.22\n",
                     "[[0.95 0.05]\n [0.09 0.91]]\n", "True True True\n",
                     "190 S?S 0.99 4.8\n", "[[0.946 0.054 0.   ]\n [0.    0.926 0.074]\n",
                     "falls inside sequence 3 (rows 90 to 119)",
                     "best by BIC: n_components=3, covariance_type='tied'", "GaussianHMM True 16\n"):
            assert line in printed, printed
        # every output block of the page is what its example prints, exactly
        text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
        shown = re.findall(r"```python\n.*?```\n\n```text\n(.*?)```", text, flags=re.DOTALL)
        assert "".join(shown) == printed, printed

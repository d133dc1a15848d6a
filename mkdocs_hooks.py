"""mkdocs hooks for the documentation site (``hooks:`` in mkdocs.yml).

fastem's docstrings are numpydoc and use Sphinx cross-reference roles such as
``:class:`fastem.GaussianMixture``` and ``:meth:`partial_fit```.  mkdocstrings
renders the backquoted name as code but leaves the role's prefix as text;
this hook drops the prefix, so the API reference shows just the name.
"""

import re

_ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj|ref|term):(?=<code>)")


def on_page_content(html, page, config, files):
    """Remove Sphinx role prefixes left in rendered docstrings."""
    return _ROLE.sub("", html)

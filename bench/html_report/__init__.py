"""An offline HTML report of a results folder: `write_report(out)` writes OUT/report/index.html.

One module per section (fitting and CI, compression, generative, speed, provenance), each reading only what its
suite wrote under OUT; `page` puts them together; `static/` holds the page's script and style sheet.
"""

from .page import ReportError, write_report

__all__ = ["ReportError", "write_report"]

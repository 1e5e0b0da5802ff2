"""URL matching: one URL per resource, and no redirects that are not ours.

- Ids are ASCII digits. Werkzeug's ``int`` converter matches ``\\d``, which includes
  every Unicode digit, and Python's ``int()`` accepts them: 177 in Arabic-Indic
  (U+0660 to U+0669) or fullwidth digits would reach thing 177.
- Repeated slashes are not merged. Werkzeug would answer ``/api//things`` with a 308
  to ``/api/things``, an HTML body and a ``Location`` built from the request's ``Host``
  header; it is a 404 like any other unknown path.
"""

from __future__ import annotations

from quart import Quart
from werkzeug.routing import IntegerConverter


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` matching ``[0-9]+`` only."""

    regex = r"[0-9]+"


def init_app(app: Quart) -> None:
    """Apply these rules to *app*'s URL map (before any route is added)."""
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.url_map.merge_slashes = False

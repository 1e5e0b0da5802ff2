"""Translation hook for user-facing strings.

Strings go through ``_()`` so catalogs can be added without touching call sites;
until a catalog is installed, ``gettext`` returns the English text unchanged.
"""

from __future__ import annotations

from gettext import gettext as _

__all__ = ["_"]

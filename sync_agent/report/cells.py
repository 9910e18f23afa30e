"""Text from the source systems as a spreadsheet cell that stays text.

Procedure names, codes and flag details come from systems the agent does not control. Excel
runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (a CSV's cells too), so a
value crafted or mangled upstream could compute, link out or break a row in the file staff open.
"""

from __future__ import annotations

import re
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: what openpyxl would store as a formula or an error value rather than as the text it is
_NOT_TEXT_IN_XLSX = re.compile(r"=|#(NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A)$")
#: control characters an .xlsx cannot hold (openpyxl refuses them, and the whole file with them)
_ILLEGAL_IN_XLSX = re.compile(r"[\000-\010\013\014\016-\037]")


def csv_text(value: Any) -> Any:
    """``value`` for a CSV cell: text that Excel would read as a formula gets a leading
    apostrophe, which Excel shows as text and a person reads past; other values are unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def xlsx_text(value: str) -> tuple[str, bool]:
    """``value`` as an .xlsx can hold it (control characters dropped), and whether the cell must
    be marked as text for openpyxl not to store it as a formula or an error value."""
    clean = _ILLEGAL_IN_XLSX.sub("", value)
    return clean, bool(_NOT_TEXT_IN_XLSX.match(clean))


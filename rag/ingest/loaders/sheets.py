"""Spreadsheets: .xlsx with openpyxl (cached cell values, never formulas run), .csv and .tsv with the
standard library. Each sheet is a section headed by its name; each row names its cells by the
sheet's header row (see ``tables``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, check_zip, read_text
from rag.ingest.loaders.tables import render_table
from rag.schema import Document

MAX_CSV_FIELD = 1_000_000  # characters in one cell


def _load_xlsx(path: Path, _: LoadOptions) -> Document:
    import openpyxl

    check_zip(path, "xlsx")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (KeyError, ValueError, OSError) as err:
        raise LoadError("corrupt-xlsx", f"not a readable .xlsx ({type(err).__name__}: {err})") from None
    try:
        sheets = [(sheet.title, render_table(_used_rows(sheet))) for sheet in workbook.worksheets]
        title = workbook.properties.title or ""
    finally:
        workbook.close()
    text = "\n\n".join(f"## {name}\n\n{rows}" for name, rows in sheets if rows)
    return Document(source=str(path), text=text, title=title)


def _used_rows(sheet: Any) -> list[tuple[object, ...]]:
    """The rows that hold a value, read from the cells the file has: a sheet whose declared size
    (``<dimension ref="A1:WNX1000000">``) is a billion cells but holds one is read as one cell."""
    sheet.reset_dimensions()  # the declared range is the file's claim, not its content
    return [row for row in sheet.iter_rows(values_only=True) if any(v is not None for v in row)]


def _load_csv(path: Path, _: LoadOptions) -> Document:
    text = read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _delimiter(text[:65536])
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as err:
        raise LoadError("corrupt-csv", f"not readable as CSV ({err}); check its quoting") from None
    return Document(source=str(path), text=render_table(rows))


def _delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


XLSX = Loader("xlsx", (".xlsx", ".xlsm"), _load_xlsx, isolated=True)
CSV = Loader("csv", (".csv", ".tsv"), _load_csv, isolated=True)

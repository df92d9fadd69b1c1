"""The package's one reader of comma-separated numbers: the forecasting task's series and
the classification task's own CSV files (``dataset: file``) are read, checked and reported on
by :func:`read_table`."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import numpy as np

from ..config.parse import FLOAT32_MAX
from ..errors import DataError, brief
from .base import check_encoding, read_text

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})

#: what a text cell's error suggests (the forecasting task can leave columns out)
COLUMNS_HINT = "a text column can be left out with task.columns (the columns to read, by header name or number)"


def check_table_options(options, *, file: str, unit: str = "column") -> None:
    """The checks every task reading a table makes of its options before any data: a codec
    that decodes text, and ``task.columns`` naming at least one column (``unit``: what a
    column is to the task, in the message)."""
    check_encoding(options.encoding, file=file)
    if options.columns is not None and not options.columns:
        from ..errors import ConfigError

        raise ConfigError(f"[] names no column to read; list the columns (by header name or number, 1 is the "
                          f"first) or leave the key out to read every {unit}", file=file, path="task.columns")


def _number(cell: str) -> Optional[float]:
    try:
        return float(cell)
    except ValueError:
        return None


_LAST_TABLE: dict = {}  # the last file read (the memory check's data_spec, then the task, read it once)


def read_table(path: Path, encoding: str = "utf-8", *, header: Optional[bool] = None,
               columns: Optional[tuple] = None, layout: Optional[dict] = None, stamp: bool = True,
               text_hint: str = COLUMNS_HINT) -> tuple[np.ndarray, list[str]]:
    """See :func:`_read_table`; the last file read is kept (read-only) until it changes.
    ``layout``, when given, receives ``header`` (whether the first row was read as names),
    ``skipped`` (the columns left out) and ``lines`` (the line number of each row read)."""
    try:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, encoding, header,
               tuple(columns) if columns is not None else None, stamp, text_hint)
    except OSError:
        key = None
    if key is not None and key in _LAST_TABLE:
        values, names, found = _LAST_TABLE[key]
    else:
        found = {}
        values, names = _read_table(path, encoding, header=header, columns=columns, layout=found, stamp=stamp,
                                    text_hint=text_hint)
        values.flags.writeable = False
        _LAST_TABLE.clear()
        if key is not None:
            _LAST_TABLE[key] = (values, tuple(names), found)
    if layout is not None:
        layout.update(copy.deepcopy(found))
    return values, list(names)


def _header(path: Path, first_line: int, first: list[str], header: Optional[bool]) -> bool:
    """Whether the first row is a header (``header`` None: when none of its cells is a number)."""
    if header is not None:
        return header
    numbers = [_number(c) is not None for c in first]
    if any(numbers) and not all(numbers):
        j = numbers.index(False)
        raise DataError(f"{path}:{first_line}: column {j + 1} of the first row is {brief(first[j])}, not a number, "
                        "while other cells of that row are numbers: a header row holds no numbers. Set "
                        "task.header: true to read the first row as the column names, or fix the value")
    if not any(numbers) and any(c.lower() in MISSING for c in first):
        j = next(j for j, c in enumerate(first) if c.lower() in MISSING)
        raise DataError(f"{path}:{first_line}: column {j + 1} of the first row is {brief(first[j])}, a missing "
                        "value rather than a column name; set task.header: true if the first row is a header, "
                        "or fill the missing values")
    return not any(numbers)


def _read_table(path: Path, encoding: str = "utf-8", *, header: Optional[bool] = None,
                columns: Optional[tuple] = None, layout: dict, stamp: bool = True,
                text_hint: str = COLUMNS_HINT) -> tuple[np.ndarray, list[str]]:
    """``[rows, columns]`` float64 values and the column names (``series_i`` without a header).

    ``header``: True, False or None (the first row is a header when none of its cells is a
    number; a first row that mixes numbers and text is an error naming its first text
    cell). ``columns``: the columns to read, by header name or by number (1 is the first);
    None reads every column, except (with ``stamp``) a leading time-stamp column (the first
    column of a file with a header, when its first value is no number: Informer's ``date``).
    Every value read must be a finite number within float32's range; a missing value (empty,
    ``NA``, ``nan``), a text or an overflowing number is a DataError naming the line and the
    column (a text cell's error ends with ``text_hint``)."""
    text = read_text(path, encoding)
    if text.startswith("\ufeff"):  # a byte-order mark (Excel's 'CSV UTF-8'): not part of the first cell
        text = text[1:]
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file")
    first_line, first = lines[0][0], _cells(lines[0][1])
    header = _header(path, first_line, first, header)
    names = first if header else [f"column {j + 1}" for j in range(len(first))]
    rows = lines[1:] if header else lines
    if not rows:
        raise DataError(f"{path}: a header and no data")
    width = len(names)
    if width == 1:
        _other_separator(path, *rows[0])
    for n, line in rows:
        fields = line.count(",") + 1
        if fields != width:
            raise DataError(f"{path}:{n}: {fields} comma-separated fields, the first row has {width}")
    if columns is None:
        lead = _cells(rows[0][1])[0]
        keep = list(range(1 if stamp and header and width > 1 and _number(lead) is None else 0, width))
    else:
        keep = [_column(path, c, names if header else None, width) for c in columns]
        _once(path, columns, keep, names if header else None)
    out = np.empty((len(rows), len(keep)))
    for i, (n, line) in enumerate(rows):
        cells = _cells(line) if '"' in line else line.split(",")  # float() takes the padding, not quotes
        try:
            out[i] = [float(cells[j]) for j in keep]
        except ValueError:
            j = next(j for j in keep if _number(cells[j]) is None)
            _bad(path, n, names[j], cells[j].strip(), text_hint)
    bad = ~np.isfinite(out) | (np.abs(out) > FLOAT32_MAX)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        _bad(path, rows[i][0], names[keep[k]], _cells(rows[i][1])[keep[k]], text_hint)
    series = [names[j] for j in keep] if header else [f"series_{k}" for k in range(len(keep))]
    kept = set(keep)  # a set: a list here made reading quadratic in the number of columns
    layout.update(header=header, skipped=[names[j] for j in range(width) if j not in kept],
                  lines=[n for n, _ in rows], names=list(names) if header else None)
    return out, series


def _column(path: Path, column, names: Optional[list[str]], width: int) -> int:
    """The index of a ``task.columns`` entry: a header name or a number from 1."""
    if isinstance(column, int) and not isinstance(column, bool):
        if 1 <= column <= width:
            return column - 1
        raise DataError(f"{path}: task.columns names column {column}; the file has columns 1..{width}")
    if names is not None and names.count(column) > 1:
        where = ", ".join(str(j + 1) for j, n in enumerate(names) if n == column)
        raise DataError(f"{path}: task.columns names {brief(column)}, which the header gives to columns {where}; "
                        "name those columns by number (1 is the first)")
    if names is not None and column in names:
        return names.index(column)
    known = f"its header names {', '.join(brief(n) for n in names[:20])}" if names else "it has no header: use numbers"
    raise DataError(f"{path}: task.columns names {brief(column)}, which is not a column of the file ({known})")


def _cells(line: str) -> list[str]:
    """The cells of a row, stripped, each without one pair of enclosing double quotes (R's
    write.csv and spreadsheets quote names and sometimes numbers: ``"temp","1.5"``)."""
    cells = [c.strip() for c in line.split(",")]
    return [c[1:-1].strip() if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in cells]


def _other_separator(path: Path, n: int, line: str) -> None:
    """A one-column row that another separator splits (tabs, semicolons, spaces) is refused as
    such: its cells were read as one text cell ('-0.4\t0.2 is not a number; leave the text
    column out'), which hid that the file is not comma-separated."""
    for sep, name in (("\t", "tabs"), (";", "semicolons"), (None, "spaces")):
        if len(line.strip().split(sep)) > 1:
            raise DataError(f"{path}:{n}: no comma in the row, but {name} between its values: the file is read as "
                            "comma-separated values; save it with commas between the columns")


def _once(path: Path, columns: tuple, keep: list[int], names: Optional[list[str]]) -> None:
    """A column listed twice in ``task.columns`` (by number, by name, or both) is refused:
    it was read twice, and a sequence regression's target then fed its own input."""
    seen: dict[int, object] = {}
    for entry, j in zip(columns, keep):
        if j in seen:
            what = f"column {j + 1}" + (f" ({brief(names[j])})" if names else "")
            raise DataError(f"{path}: task.columns lists {what} twice (as {brief(seen[j])} and {brief(entry)}); "
                            "list each column once")
        seen[j] = entry


def _bad(path: Path, line: int, column: str, cell: str, text_hint: str = COLUMNS_HINT) -> None:
    """Raise the DataError for an unusable ``cell``."""
    value = _number(cell)
    if cell.lower() in MISSING or (value is not None and value != value):
        why = f"a missing value ({brief(cell)}); fill or drop missing values first"
    elif value is None:
        why = f"{brief(cell)}, not a number; {text_hint}"
    else:
        why = f"{brief(cell)}, which is outside float32's range (±3.4e38) in which the data is trained"
    raise DataError(f"{path}:{line}: {column} is {why}")

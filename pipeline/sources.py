"""Users' data files, read through one validated reader with a field mapping.

:func:`open_rows` reads the raw rows of any supported file (:data:`FORMATS`); :func:`read_source` turns them
into rows of a :class:`pipeline.records.Row` class (seed instructions, judge examples, eval prompts, labelled
pairs). A ``fields`` mapping says where each row field is in the file, as a path: ``turns[0]``,
``conversations[0].value``, ``meta.answer`` (a column literally named ``a.b`` is that column). Fields that are
not mapped are read from a column of the same name; other columns are ignored, since users' files carry extras.

Every bad input is one :class:`RecordError` line, ``path:N: reason``, where N counts what the format has:
lines (JSONL, CSV), items (a JSON array) or rows (parquet, a saved dataset). :mod:`pipeline.tasks` reads its
task files through the same readers and paths. :func:`read_sources` reads several files as one list (a params
role given as a list), each with its own mapping, ids unique across them.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pipeline import records
from pipeline.errors import RecordError
from pipeline.records import _DuplicateKey, _unique_keys, json_lines

FORMATS: dict[str, str] = {
    ".jsonl": "JSON Lines: one object per line (N is the line)",
    ".json": 'a JSON array of objects, or an object with one key holding it ({"data": [...]}) (N is the item)',
    ".csv": "CSV with a header row, UTF-8; every cell is text (N is the line)",
    ".parquet": "Parquet, read with pyarrow (N is the row); .pq too",
    "folder": "a dataset saved with datasets' save_to_disk, or one split folder of a saved DatasetDict (N is the row)",
}

# A path into a row: keys joined by dots, list items as [i] (negative counts from the end).
PATH_SYNTAX = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[-?\d+\])*")
_STEP = re.compile(r"\[(-?\d+)\]|\.?([^.\[\]]+)")
BAD_PATH_HINT = "write keys with dots and list items as [i], e.g. turns[0].content"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # what a lookup finds where a row has nothing

# Text fields that a row may leave out (absent, unmapped or null) although the class has no default, so that a file of
# bare instructions needs no category column: read as "", or, where the class requires the field non-empty (a seed
# instruction's category), as the name of the file it came from ("alpaca_data" for alpaca_data.json).
OPTIONAL_TEXT: tuple[str, ...] = ("category",)

# The prefix of ids derived for rows without one (see read_source).
ID_PREFIX: dict[str, str] = {"SeedInstruction": "seed", "JudgeExample": "judge", "EvalPrompt": "eval",
                             "LabelledPair": "pair"}

R = TypeVar("R", bound=records.Row)


# --------------------------------------------------------------------------------------------- raw rows
@dataclass
class Rows:
    """A file's raw rows: ``rows`` yields ``(position, row)``; ``unit`` names what a position counts (line, item,
    row); ``text_cells`` is true where every cell is text (CSV), whose header row is ``columns``."""

    path: Path
    unit: str
    rows: Iterator[tuple[int, Any]]
    text_cells: bool = False
    columns: list[str] | None = None  # a CSV's header row (None: the format has no header)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self.rows


def _decode(path: Path, data: bytes) -> str:
    """``data`` as text; bad UTF-8 is reported at its line, like the JSONL reader does."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM, as Excel writes
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        byte = e.start - data.rfind(b"\n", 0, e.start)
        raise RecordError(f"{path}:{line}: not valid UTF-8 (byte {byte} of the line)") from None


def _iter_jsonl(path: Path, item: str) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as fh:
        yield from json_lines(fh, path)


def _iter_json(path: Path, item: str) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(_decode(path, path.read_bytes()), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: invalid JSON — {e.msg} (column {e.colno})") from None
    except _DuplicateKey as e:
        raise RecordError(f'{path}: key "{e.args[0]}" appears twice in one object — JSON readers keep only one of '
                          "them; keep one") from None
    if isinstance(data, dict):  # {"data": [...]}: one key holding the rows
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(data) == 1 and lists else data
    if isinstance(data, dict):
        keys = ", ".join(map(str, list(data)[:5])) + (", …" if len(data) > 5 else "")
        raise RecordError(f"{path}: expected a JSON array of objects (one per {item}), got an object with keys "
                          f"{keys or '(none)'} — hold the rows in an array: [{{...}}, {{...}}], or under one key: "
                          '{"data": [...]}')
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a JSON array of objects (one per {item}), got {kind_of(data)}")
    yield from enumerate(data, start=1)


def _csv_rows(path: Path) -> tuple[list[str] | None, Iterator[tuple[int, Any]]]:
    """A CSV file's header row and its rows. Quotes are read strictly: an unclosed one would otherwise swallow
    the rest of the file into one cell, to be reported later as a row with missing fields."""
    reader = csv.DictReader(io.StringIO(_decode(path, path.read_bytes()), newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise _csv_error(path, 1, reader, e) from None

    def rows() -> Iterator[tuple[int, Any]]:
        start = 2  # the line a row starts on (a quoted cell may span lines)
        try:
            for row in reader:
                if None in row:
                    width = len(reader.fieldnames or [])
                    raise RecordError(f"{path}:{start}: {width + len(row[None])} values, but the header has {width} "
                                      "columns")
                yield start, {k: v for k, v in row.items() if v is not None}  # a short row lacks its last cells
                start = reader.line_num + 1
        except csv.Error as e:
            raise _csv_error(path, start, reader, e) from None

    return (list(header) if header is not None else None), rows()


def _csv_error(path: Path, start: int, reader: csv.DictReader[str], e: csv.Error) -> RecordError:
    if "unexpected end of data" in str(e):
        return RecordError(f"{path}:{start}: a quoted cell in the row starting here is never closed — the rest of "
                           'the file would read as one cell; close the quote (a quote inside a quoted cell is written "")')
    return RecordError(f"{path}:{reader.line_num}: not a readable CSV file — {e}")


def _iter_parquet(path: Path, item: str) -> Iterator[tuple[int, Any]]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as e:
        raise RecordError(f"{path}: not a readable parquet file — {str(e).splitlines()[0]}") from None
    yield from enumerate(rows, start=1)


def _saved_json(path: Path) -> dict[str, Any]:
    """One of a saved dataset's own JSON files (an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: not valid JSON ({e}) — save the dataset again with save_to_disk") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not what save_to_disk writes (an object) — save the dataset again")
    return data


def _iter_saved_dataset(path: Path, item: str) -> Iterator[tuple[int, Any]]:
    if (path / "dataset_dict.json").exists():
        splits = _saved_json(path / "dataset_dict.json").get("splits", [])
        if len(splits) != 1:
            raise RecordError(f"{path}: a dataset with splits {', '.join(splits)} — point at one, e.g. "
                              f"{path / (splits[0] if splits else 'train')}")
        path = path / splits[0]
    if not (path / "state.json").exists():
        raise RecordError(f"{path}: a folder, but not a dataset saved with datasets' save_to_disk "
                          "(no state.json or dataset_dict.json)")
    # What load_from_disk needs, checked first: its own errors are tracebacks about other things.
    state = _saved_json(path / "state.json")
    named = [f.get("filename") for f in state.get("_data_files", []) if isinstance(f, dict)]
    for name in ["dataset_info.json", *named]:
        if not (path / str(name)).is_file():
            raise RecordError(f"{path}: the saved dataset lacks {name} — copy the whole folder, or save it again "
                              "with save_to_disk")
    import datasets
    import pyarrow

    try:
        yield from enumerate(datasets.load_from_disk(str(path)), start=1)
    except (pyarrow.ArrowException, OSError, ValueError) as e:
        raise RecordError(f"{path}: not a readable saved dataset — {str(e).splitlines()[0]}") from None


_READERS: dict[str, tuple[str, Callable[[Path, str], Iterator[tuple[int, Any]]]]] = {
    ".jsonl": ("line", _iter_jsonl), ".json": ("item", _iter_json), ".parquet": ("row", _iter_parquet),
    ".pq": ("row", _iter_parquet)}


def open_rows(path: str | Path, item: str = "row") -> Rows:
    """The raw rows of a JSONL, JSON, CSV or parquet file or a ``save_to_disk`` folder (:data:`FORMATS`).

    Rows are read lazily: a bad line fails (``path:N: reason``) when iteration reaches it (a CSV's header row,
    ``columns``, is read at once). ``item`` names one row in messages about the file's shape ("expected a JSON
    array of objects (one per row)").
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: not found")
    if path.is_dir():
        return Rows(path, "row", _iter_saved_dataset(path, item))
    if path.suffix.lower() == ".csv":  # its header is read now, for check_header
        columns, rows = _csv_rows(path)
        return Rows(path, "line", rows, text_cells=True, columns=columns)
    if path.suffix.lower() not in _READERS:
        raise RecordError(f'{path}: unknown format "{path.suffix}" — use .jsonl, .json, .csv, .parquet or a '
                          "folder saved with datasets' save_to_disk")
    unit, reader = _READERS[path.suffix.lower()]
    return Rows(path, unit, reader(path, item))


# --------------------------------------------------------------------------------------------- paths
def parse_path(path: str) -> list[str | int]:
    """``turns[0].content`` → ``["turns", 0, "content"]``."""
    return [int(i) if i else key for i, key in _STEP.findall(path)]


def kind_of(value: Any) -> str:
    """What a value is, in words, for messages."""
    return {str: "text", dict: "a mapping", list: "a list", type(None): "null", int: "an integer", float: "a number",
            bool: "true/false"}.get(type(value), f"a {type(value).__name__}")


def lookup(raw: Mapping[str, Any], path: str) -> tuple[Any, str | None]:
    """The value at ``path`` in a row and None, or :data:`MISSING` and why it is absent.

    The reason is ``""`` when the row lacks the path's first key, so that the caller can name the row's
    columns or say how to map the field.
    """
    value: Any = raw
    walked = ""
    for step in [path] if path in raw else parse_path(path):  # a column named "a.b" is itself
        if isinstance(step, int):
            if not isinstance(value, (list, tuple)):
                return MISSING, f'"{walked}" is {kind_of(value)}, not a list'
            if not -len(value) <= step < len(value):
                return MISSING, f'"{walked}" has {len(value)} item' + ("" if len(value) == 1 else "s")
            walked += f"[{step}]"
        else:
            if not isinstance(value, Mapping):
                return MISSING, f'"{walked}" is {kind_of(value)}, not a mapping'
            if step not in value:
                return MISSING, f'"{walked}" has no key "{step}"' if walked else ""
            walked += f".{step}" if walked else step
        value = value[step]
    return value, None


def check_fields(path: str | Path, fields: Mapping[str, Any] | None, known: Sequence[str],
                 what: str = "field") -> dict[str, str]:
    """``fields`` as a dict, once every key is one of ``known`` and every value a well-formed path."""
    mapping = dict(fields or {})
    for target, source in mapping.items():
        if target not in known:
            near = difflib.get_close_matches(str(target), list(known), n=1)
            hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(known)
            raise RecordError(f'{path}: fields: unknown {what} "{target}" — {hint}')
        if not isinstance(source, str) or not PATH_SYNTAX.fullmatch(source):
            raise RecordError(f"{path}: fields: bad path {json.dumps(source)} for {target} — {BAD_PATH_HINT}")
    return mapping


def mapped_columns(mapping: Mapping[str, str]) -> set[str]:
    """The columns a mapping reads: each path's first key (or the path itself, for a column named ``a.b``)."""
    out: set[str] = set()
    for source in mapping.values():
        steps = parse_path(source)
        out |= {source, *([str(steps[0])] if steps else [])}
    return out


# A header cell that reads as a column name: a letter first, then few words of name characters.
_NAME_LIKE = re.compile(r"[^\W\d][\w .\-/()\[\]]{0,39}")


def _reads_as_data(cell: str) -> bool:
    text = cell.strip()
    return bool(text) and (not _NAME_LIKE.fullmatch(text) or len(text.split()) > 3)


def check_header(rows: Rows, known: Iterable[str], example: Sequence[str]) -> None:
    """Stop a CSV whose first line is a row of data, not a header: it names none of the ``known`` columns and a
    cell of it reads as a value (a number, a sentence). Otherwise that row silently becomes the header and the
    next row is reported for lacking columns whose names are data. ``example`` names columns for the fix."""
    columns = rows.columns
    if not columns or set(columns) & set(known) or not any(_reads_as_data(c) for c in columns):
        return
    shown = ", ".join(json.dumps(c, ensure_ascii=False)[:40] for c in columns[:4]) + (", …" if len(columns) > 4
                                                                                       else "")
    raise RecordError(f"{rows.path}:1: the first line reads as data, not as column names ({shown}) — a CSV file "
                      f"starts with a header row naming its columns; add one, e.g. {','.join(example)}")


# --------------------------------------------------------------------------------------------- rows of a class
def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))  # pandas writes NaN for gaps


def _columns(raw: Mapping[str, Any]) -> str:
    names = [str(k) for k in raw]
    return ", ".join(names[:20]) + (f", … ({len(names)} columns)" if len(names) > 20 else "") or "no columns"


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _absent_text(cls: type[records.Row], name: str, path: Path) -> str:
    """What an optional text field (:data:`OPTIONAL_TEXT`) reads as when a row lacks it."""
    return (path.name if path.is_dir() else path.stem) if name in cls.NONEMPTY else ""


def _cell(value: Any, tp: Any) -> Any:
    """A CSV cell (always text) as the integer an int field wants; anything else is left for validation."""
    if isinstance(value, str) and int in (tp, *typing.get_args(tp)) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return value


def _project(raw: Mapping[str, Any], cls: type[R], mapping: Mapping[str, str], text_cells: bool,
             where: str) -> dict[str, Any]:
    """The class's fields of one row: from their mapped paths, else same-named columns; nulls left out where
    the field has a default."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in mapping:
            value, why = lookup(raw, mapping[f.name])
            if value is MISSING:
                raise RecordError(f'{where}field "{mapping[f.name]}" (mapped to {f.name}) missing — '
                                  f"{why or 'the row has ' + _columns(raw)}")
        elif f.name in raw:
            value = raw[f.name]
        else:
            continue
        if _is_null(value) and (_has_default(f) or f.name in OPTIONAL_TEXT):
            continue
        if f.name == cls.ID_FIELD and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # MT-Bench's question_id is a number; ids are compared as text
        out[f.name] = _cell(value, hints[f.name]) if text_cells else value
    return out


def _fill_absent(out: dict[str, Any], raw: Mapping[str, Any], cls: type[R], where: str, path: Path) -> None:
    """Optional text filled in; a one-line error naming the first required field the row lacks."""
    for f in dataclasses.fields(cls):
        if f.name in out or _has_default(f) or f.name == cls.ID_FIELD:
            continue
        if f.name in OPTIONAL_TEXT:
            out[f.name] = _absent_text(cls, f.name, path)
            continue
        raise RecordError(f'{where}missing field "{f.name}" — map it with fields: {{{f.name}: <column>}}; the row '
                          f"has {_columns(raw)}")


def _row(raw: Any, cls: type[R], mapping: Mapping[str, str], rows: Rows, pos: int) -> R:
    where = f"{rows.path}:{pos}: "
    if not isinstance(raw, Mapping):
        raise RecordError(f"{where}expected an object (a mapping of fields), got {kind_of(raw)}")
    out = _project(raw, cls, mapping, rows.text_cells, where)
    _fill_absent(out, raw, cls, where, rows.path)
    id_field = cls.ID_FIELD
    derive = id_field is not None and id_field not in out
    if derive:
        out[id_field] = "-"  # a placeholder, so that the row is validated before its content is hashed
    row = typing.cast(R, cls.from_dict(out, where))
    if derive:
        content = {k: v for k, v in row.to_dict().items() if k != id_field}
        prefix = ID_PREFIX.get(cls.__name__, cls.__name__.lower())
        row = dataclasses.replace(row, **{id_field: records.stable_id(prefix, rows.path.name, pos, content)})
    return row


def read_source(path: str | Path, cls: type[R], fields: Mapping[str, str] | None = None) -> list[R]:
    """Rows of ``cls`` (a :class:`pipeline.records.Row` class) from a user's file, validated.

    - A ``.jsonl`` file without ``fields`` (None or empty) is read strictly, exactly as
      :func:`pipeline.records.read_jsonl`: every key must be a field of ``cls``.
    - Otherwise each row is projected onto the class's fields: a field comes from its path in ``fields``
      (``{"instruction": "turns[0]"}``), else from a column of its own name; other columns are ignored.
      ``category`` may be absent: read as "", or as the file's name (``stem``) where the class requires one (seed
      instructions). CSV cells are text, so an integer field (``score``) takes a cell of digits as its number.
      The projection is then validated by ``cls.from_dict`` (types, blank text, length) with ``path:N: `` before
      each message.
    - A row without the class's id (``cls.ID_FIELD``, unmapped and not a column) gets one derived from where it
      is and what it says: ``stable_id(prefix, file name, N, the row's other fields)``, e.g. ``eval-3f1c…``; the
      same file gives the same ids on every read, and two rows never share one. A numeric id becomes its text.

    Errors (:class:`RecordError`, one line): a mapping key that is not a field (with a did-you-mean) or a
    malformed path (``path: fields: …``); a row lacking a mapped path or a required field
    (``path:N: missing field "instruction" — map it with fields: {instruction: <column>}; the row has a, b``);
    a duplicate id (``path:N: duplicate id "x" (first at line M)``); a file without rows (``path: no rows``); a
    CSV without a header row (:func:`check_header`).
    """
    path = Path(path)
    if _strict(path, fields):
        return records.read_jsonl(path, cls)
    names = [f.name for f in dataclasses.fields(cls)]
    mapping = check_fields(path, fields, names)
    rows = open_rows(path)
    required = [f.name for f in dataclasses.fields(cls)
                if not _has_default(f) and f.name not in (*OPTIONAL_TEXT, cls.ID_FIELD)]
    check_header(rows, {*names, *mapped_columns(mapping)}, required)
    out: list[R] = []
    seen: dict[str, int] = {}
    for pos, raw in rows:
        row = _row(raw, cls, mapping, rows, pos)
        if cls.ID_FIELD:
            rid = getattr(row, cls.ID_FIELD)
            if rid in seen:
                raise RecordError(f'{path}:{pos}: duplicate {cls.ID_FIELD} "{rid}" (first at {rows.unit} '
                                  f"{seen[rid]})")
            seen[rid] = pos
        out.append(row)
    if not out:
        raise RecordError(f"{path}: no rows")
    return out


def _strict(path: Path, fields: Mapping[str, str] | None) -> bool:
    return not fields and path.suffix.lower() == ".jsonl" and not path.is_dir()


@dataclass(frozen=True)
class Source:
    """A user's file and where each row field is in it (see :func:`read_source`)."""

    path: str
    fields: dict[str, str] = field(default_factory=dict)

    def read(self, cls: type[R]) -> list[R]:
        return read_source(self.path, cls, self.fields)

    def position(self, index: int) -> str:
        """``path:N`` of the row at ``index`` of :meth:`read`'s list (reads the file again: for messages)."""
        path = Path(self.path)
        if _strict(path, self.fields):  # the strict reader skips blank lines only
            with path.open("rb") as fh:
                numbers = [n for n, line in enumerate(fh, start=1) if line.decode("utf-8", "replace").strip()]
        else:
            numbers = [n for n, _ in open_rows(path)]
        return f"{path}:{numbers[index]}"


def read_sources(sources: Sequence[Source], cls: type[R], what: str = "the sources") -> list[R]:
    """Rows of ``cls`` from several sources, in order, each read by :func:`read_source` with its own mapping.

    An id must be unique across them too: ``b.csv:3: duplicate id "x" (first at a.jsonl:7) — ...``, naming both
    files; ``what`` says whose sources they are (``data.seed_instructions``).
    """
    out: list[R] = []
    first: dict[str, tuple[int, int]] = {}
    for s, source in enumerate(sources):
        rows = source.read(cls)
        for r, row in enumerate(rows):
            rid = getattr(row, cls.ID_FIELD) if cls.ID_FIELD else None
            if rid is None:
                continue
            if rid in first:  # within one file read_source has said so already: this one is in another file
                fs, fr = first[rid]
                raise RecordError(f'{source.position(r)}: duplicate {cls.ID_FIELD} "{rid}" (first at '
                                  f"{sources[fs].position(fr)}) — ids must be unique across {what}")
            first[rid] = (s, r)
        out.extend(rows)
    return out

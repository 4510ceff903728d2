"""A data pool's rows (LoadRunner's parameter files), as the language loads them: an inline list, or a CSV file
scanned once (header, ragged rows, encoding) and kept compactly: the file's bytes plus two 4-byte offsets per row;
a row is parsed when it is handed out (5 µs). A million rows of ``phone,name`` (a 25 MB file) take about 33 MB
this way, instead of ~250 MB as Python lists."""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.scenario.model import Pool as PoolSpec


class PoolFileError(Exception):
    """Something wrong in a pool's CSV file, at ``line``:``col`` of it (1-based; 0 when not about a place)."""

    def __init__(self, message: str, line: int = 0, col: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint


# ----------------------------------------------------------------------------------------------- rows


class PoolData(Protocol):
    columns: tuple[str, ...]

    def __len__(self) -> int: ...

    def row(self, index: int) -> dict[str, Any]: ...


class InlineData:
    """Rows written in the scenario."""

    def __init__(self, rows: Sequence[Any]) -> None:
        mapped = [r if isinstance(r, dict) else {"value": r} for r in rows]
        names: dict[str, None] = {}
        for r in mapped:
            names.update(dict.fromkeys(r))
        self.columns = tuple(names)
        self._rows = [{c: r.get(c, "") for c in self.columns} for r in mapped]

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, index: int) -> dict[str, Any]:
        return dict(self._rows[index])


class CsvData:
    """A CSV file held as its bytes and the (start, end) byte offsets of each record."""

    def __init__(
        self,
        path: Path,
        *,
        columns: Sequence[str] | None = None,
        header: bool = True,
        delimiter: str = ",",
        quote: str = '"',
        encoding: str = "utf-8",
        skip_empty: bool = True,
    ) -> None:
        self.path = path
        self.encoding_name = encoding
        self.encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        self._dialect: dict[str, Any] = {"delimiter": delimiter, "quotechar": quote, "strict": True}
        try:
            self._data = path.read_bytes()
        except OSError as exc:
            raise PoolFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        offsets = "I" if len(self._data) < 2**32 else "Q"  # 4 bytes per offset for files under 4 GiB
        self._starts = array(offsets)
        self._ends = array(offsets)
        self.columns = self._scan(columns, header, skip_empty)

    def _records(self) -> Iterator[tuple[int, int, int, list[str]]]:
        """(first line, start offset, end offset, fields) of each record, quoted newlines included."""
        data = self._data
        position = {"line": 0, "offset": 0}

        def lines() -> Iterator[str]:
            start = 0
            size = len(data)
            while start < size:
                end = data.find(b"\n", start)
                end = size if end < 0 else end + 1
                position["line"] += 1
                position["offset"] = end
                try:
                    yield data[start:end].decode(self.encoding)
                except UnicodeDecodeError as exc:
                    raise PoolFileError(
                        f"not {self.encoding_name} text: {exc.reason} at byte {start + exc.start}",
                        position["line"],
                        exc.start + 1,
                        "set the pool's encoding (e.g. encoding: latin-1)",
                    ) from None
                except LookupError:
                    raise PoolFileError(f"unknown encoding {self.encoding_name!r}") from None
                start = end

        reader = csv.reader(lines(), **self._dialect)
        first_line, start = 1, 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise PoolFileError(f"malformed CSV: {exc}", position["line"], 1) from None
            yield first_line, start, position["offset"], fields
            first_line, start = position["line"] + 1, position["offset"]

    def _scan(self, columns: Sequence[str] | None, header: bool, skip_empty: bool) -> tuple[str, ...]:
        names: tuple[str, ...] | None = tuple(columns) if columns else None
        header_pending = header
        width = len(names) if names else None
        for line, start, end, fields in self._records():
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                if skip_empty or header_pending:
                    continue
                fields = [""]
            if header_pending:
                header_pending = False
                found = tuple(f.strip() for f in fields)
                if names is None:
                    self._check_header(found, line)
                    names, width = found, len(found)
                continue
            if width is None:
                width = len(fields)
                names = tuple(f"column{i + 1}" for i in range(width))
            if len(fields) != width:
                raise PoolFileError(
                    f"row has {len(fields)} field(s), the header has {width}",
                    line,
                    1,
                    "quote fields that contain the delimiter, or fix the row",
                )
            self._starts.append(start)
            self._ends.append(end)
        if names is None:
            raise PoolFileError("the file is empty: no header row", 1, 1, "add a header row naming the columns")
        return names

    @staticmethod
    def _check_header(names: tuple[str, ...], line: int) -> None:
        for index, name in enumerate(names):
            if not name.isidentifier():
                what = "an empty column name" if not name else f"column name {name!r} is not a plain name"
                raise PoolFileError(
                    f"{what} (column {index + 1}): templates read columns as {{{{ pool.column }}}}",
                    line,
                    1,
                    "use letters, digits and _ in the header, or give columns: [...] and header: true",
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PoolFileError(f"duplicate column name(s) in the header: {', '.join(duplicates)}", line, 1)

    def __len__(self) -> int:
        return len(self._starts)

    def row(self, index: int) -> dict[str, Any]:
        text = self._data[self._starts[index] : self._ends[index]].decode(self.encoding)
        fields = next(csv.reader(io.StringIO(text, newline=""), **self._dialect), [])
        return dict(zip(self.columns, fields, strict=False))


def load_data(spec: PoolSpec, path: Path | None) -> PoolData:
    """The rows of a pool: inline, or from the CSV file at ``path`` (already resolved)."""
    if spec.rows is not None:
        return InlineData(spec.rows)
    assert path is not None
    return CsvData(
        path,
        columns=spec.columns,
        header=spec.has_header,
        delimiter=spec.delimiter,
        quote=spec.quote,
        encoding=spec.encoding,
        skip_empty=spec.skip_empty,
    )


def find_csv(name: str, declared_in: Path, data_dir: Path | None) -> Path | None:
    """A pool's CSV file: in ``data_dir`` first (when given), then next to the file that declares the pool."""
    candidates = [Path(name)] if Path(name).is_absolute() else []
    if not candidates:
        if data_dir is not None:
            candidates.append(data_dir / name)
        candidates.append(declared_in.parent / name)
    return next((c for c in candidates if c.is_file()), None)

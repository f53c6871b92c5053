"""Statements compiled once, run at the driver: for those on the path of every chat
message and every join.

Each ``Connection.execute`` looks its statement up in SQLAlchemy's compiled cache (an IN
list of resends is rendered again every time), builds an execution context, processes the
parameters and wraps the cursor in a ``Result``: 60 to 230 µs per statement on this machine,
more than SQLite spends running it, and every message waits for those of its transaction.
A :class:`Prepared` asks SQLAlchemy's compiler for the statement's SQL in the dialect's own
parameter style and for the type processors of its parameters and result columns, once, and
then runs on the DBAPI cursor of the connection, inside the same SQLAlchemy transaction.
The SQL and the types stay SQLAlchemy's: the statements are Core expressions on the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any] | None
_UNSET = object()


class Prepared:
    """``statement`` for ``dialect``: parameters by name, rows as tuples of ``columns``'
    Python values (``columns``: what it selects or returns, in order)."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, columns: Sequence[Column[Any]] = ()
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:  # both dialects of the store are positional
            raise ValueError(f"{dialect.name}: a positional parameter style is needed")
        self.sql = str(compiled)
        self._dialect = dialect
        self._params: list[tuple[str, Processor, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            # A value the statement carries itself (SQLite's OFFSET of a LIMIT, say).
            fixed = _UNSET if bind.required else bind.effective_value
            self._params.append(
                (name, bind.type.dialect_impl(dialect).bind_processor(dialect), fixed)
            )
        self._results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with ``values``; every row the statement yields."""
        arguments = self._arguments(values)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(self.sql, arguments)
            found = cursor.fetchall() if self._results else []
        except self._dialect.loaded_dbapi.Error as error:
            raise self._wrapped(error, arguments) from error
        finally:
            cursor.close()
        return [self._row(row) for row in found]

    def execute_many(self, connection: Connection, values: Iterable[Mapping[str, Any]]) -> None:
        arguments = [self._arguments(each) for each in values]
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(self.sql, arguments)
        except self._dialect.loaded_dbapi.Error as error:
            raise self._wrapped(error, arguments) from error
        finally:
            cursor.close()

    def _arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        arguments = []
        for name, process, fixed in self._params:
            value = values[name] if fixed is _UNSET else fixed
            arguments.append(value if process is None else process(value))
        return tuple(arguments)

    def _row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, self._results, strict=True)
        )

    def _wrapped(self, error: Exception, arguments: Any) -> StatementError:
        """The driver's error as SQLAlchemy raises it (an IntegrityError stays one)."""
        return DBAPIError.instance(self.sql, arguments, error, self._dialect.loaded_dbapi.Error)

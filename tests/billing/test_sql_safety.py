"""Every SQL statement billing sends is a constant with $n parameters, never built from values."""

from __future__ import annotations

import ast
import pathlib

import billing

_QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare", "cursor"}


def _offenders(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _QUERY_METHODS
            and node.args
        ):
            query = node.args[0]
            # A statement built at the call site (f-string, %, +, .format) could
            # carry a value into the SQL text; constants and named constants cannot.
            if isinstance(query, ast.JoinedStr | ast.BinOp) or (
                isinstance(query, ast.Call)
                and isinstance(query.func, ast.Attribute)
                and query.func.attr == "format"
            ):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_sql_is_built_from_values() -> None:
    root = pathlib.Path(billing.__file__).parent
    files = [p for p in root.rglob("*.py") if "/v1/" not in str(p)]
    assert files
    offenders = [o for f in files for o in _offenders(f)]
    assert offenders == []


def test_the_checker_catches_an_f_string(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'async def f(conn, uid):\n    await conn.fetch(f"SELECT * FROM users WHERE id={uid}")\n'
    )
    assert _offenders(bad) == ["bad.py:2"]

"""Module and function size limits for ``src/allele`` (run by ``make lint``).

A module over ``--max-module`` lines (600) or a function over ``--max-function`` lines (80,
decorators and docstring included) is listed and the exit code is 1. A function whose body is
meant to be long (the numba reservoir kernel: one loop the compiler must see whole) carries the
comment ``# size: allow`` on its ``def`` line.

    python scripts/check_sizes.py [PATH ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ALLOW = "# size: allow"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def check(paths: list[Path], max_module: int, max_function: int) -> list[str]:
    problems: list[str] = []
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            if len(lines) > max_module:
                problems.append(f"{path}: {len(lines)} lines (limit {max_module})")
            for fn in _functions(ast.parse(text, filename=str(path))):
                first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
                span = (fn.end_lineno or fn.lineno) - first + 1
                if span > max_function and ALLOW not in lines[fn.lineno - 1]:
                    problems.append(f"{path}:{fn.lineno}: function {fn.name} is {span} lines "
                                    f"(limit {max_function})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("src/allele")])
    parser.add_argument("--max-module", type=int, default=600)
    parser.add_argument("--max-function", type=int, default=80)
    args = parser.parse_args(argv)
    problems = check(args.paths, args.max_module, args.max_function)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} size problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the optional C extension of the ``instructions`` instrument.

Everything else of the package is declared in pyproject.toml. The extension issues callgrind
client requests from valgrind's own header; it is built only where the header is present
(Debian: ``apt-get install valgrind``, which ``scripts/sysdeps.sh`` does), and a failed build
never fails the install (``optional=True``). Without it, Allele works in full except that asking
for ``instruments: [instructions]`` is one error saying to install valgrind and reinstall.
"""

import os
from pathlib import Path

from setuptools import Extension, setup


def _valgrind_include() -> str | None:
    """The directory holding ``valgrind/callgrind.h`` (``VALGRIND_INCLUDE`` first), or None."""
    candidates = [os.environ.get("VALGRIND_INCLUDE", ""), "/usr/include", "/usr/local/include"]
    for base in candidates:
        if base and (Path(base) / "valgrind" / "callgrind.h").is_file():
            return base
    return None


include = _valgrind_include()
ext_modules = [] if include is None else [
    Extension("allele.bench.instruments._callgrind",
              sources=["src/allele/bench/instruments/_callgrind.c"],
              include_dirs=[] if include == "/usr/include" else [include], optional=True),
]

setup(ext_modules=ext_modules)

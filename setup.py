"""The one compiled part of fieldsync: crypto._speedups (crypto/_speedups.c).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built (no
C compiler, no OpenSSL headers) the install goes on and crypto.changes runs its Python path,
which gives the same bytes (docs/ARCHITECTURE.md, "The signed bytes in C").
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "crypto/_speedups.c"
# the module carries its source's digest: crypto.changes does not use a build older than the source
SOURCE_SHA256 = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "crypto._speedups",
            sources=[SOURCE],
            define_macros=[("SOURCE_SHA256", f'"{SOURCE_SHA256}"')],
            libraries=["crypto"],  # OpenSSL's libcrypto, for SHA-256 (the one hashlib uses)
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)

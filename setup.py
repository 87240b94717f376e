"""The optional compiled row codec; everything else is in pyproject.toml.

``optional=True``: where no C compiler exists the install still succeeds, and the gateway runs
the pure-Python reference (``wardgate.protocols.postgres.rows.COMPILED`` is False).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wardgate.protocols.postgres._rows",
            ["src/wardgate/protocols/postgres/_rows.c"],
            optional=True,
        )
    ]
)

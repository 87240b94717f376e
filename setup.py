"""The optional compiled extensions (the row codec, the content scanner's hot loops); everything
else is in pyproject.toml.

``optional=True``: where no C compiler exists the install still succeeds, and the gateway runs
the pure-Python references (``wardgate.protocols.postgres.rows.COMPILED`` and
``wardgate.masking.detectors.compiled.COMPILED`` are False).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wardgate.protocols.postgres._rows",
            ["src/wardgate/protocols/postgres/_rows.c"],
            optional=True,
        ),
        Extension(
            "wardgate.masking.detectors._scan",
            ["src/wardgate/masking/detectors/_scan.c"],
            optional=True,
        ),
    ]
)

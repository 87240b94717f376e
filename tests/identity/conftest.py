from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.idp.server import IdpUnavailable, TestIdp, install

_RUNNING: list[TestIdp] = []


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdp]:
    """The test OpenID provider (see ``tests/idp``), running on 127.0.0.1 for the session.

    Skips when node or npm is missing. A test that rotates its keys (``rotate()``) leaves it
    running with the new keys; tests that need tokens get fresh ones.
    """
    try:
        install_dir = install()
    except IdpUnavailable as exc:
        pytest.skip(str(exc))
    idp = TestIdp(tmp_path_factory.mktemp("oidc-provider"), install_dir)
    idp.start()
    _RUNNING.append(idp)
    try:
        yield idp
    finally:
        _RUNNING.remove(idp)
        idp.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _RUNNING and "oidc_provider" in getattr(item, "fixturenames", ()):
        report.sections.append(("oidc-provider log", _RUNNING[0].logs()[-20000:]))

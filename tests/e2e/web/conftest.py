"""On a failed browser test, keep a screenshot and the page's text beside the others."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.e2e.web.browser import DemoServer, chrome, fresh_database, screenshot_dir


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def keep_failure_evidence(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not request.node.stash.get(FAILED, False) or "browser" not in request.fixturenames:
        return
    driver = request.getfixturevalue("browser")
    folder = screenshot_dir()
    driver.save_screenshot(str(folder / f"FAILED-{request.node.name}.png"))
    (folder / f"FAILED-{request.node.name}.txt").write_text(
        driver.current_url + "\n\n" + driver.execute_script("return document.body.innerText"))


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[DemoServer]:
    """``therabridge serve --demo`` on a database of its own, one per test module."""
    tmp = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    for url in fresh_database(database_url, tmp):  # one pass: the database is dropped after the loop
        demo = DemoServer(url, tmp)
        try:
            yield demo
        finally:
            demo.stop()


@pytest.fixture(scope="module")
def browser(server: DemoServer) -> Iterator[Any]:
    """One headless Chromium per test module."""
    driver = chrome()
    try:
        yield driver
    finally:
        driver.quit()

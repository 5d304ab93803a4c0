"""On a failed browser test, keep a screenshot and the page's text beside the others."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.e2e.web.browser import screenshot_dir


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

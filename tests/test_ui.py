"""The Prefect UI in a real headless browser (Debian's chromium via playwright): the finished
local-mode sweep's flow run page shows its task runs and its results table artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_deployments import local_sweep

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_flow_run_page_shows_task_runs_and_results_table(tmp_path_factory):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    stack, outcome = local_sweep(tmp_path_factory)
    url = f"{stack.ui}/runs/flow-run/{outcome['run_id']}"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_text("Task Runs", exact=True).first.click()
            page.get_by_text("model-index-002").first.wait_for()
            page.get_by_text("train-001").first.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "ui-flow-run-task-runs.png"), full_page=True)
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("regmix-results").first.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "ui-flow-run-artifacts.png"), full_page=True)
        finally:
            browser.close()

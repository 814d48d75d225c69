"""A person in front of Label Studio: headless Debian Chromium driven by Playwright.

Each :class:`Person` has a browser context of their own (own cookies), logs in with their own
e-mail and password on their own instance, and records every console error, uncaught page error
and failed request, so that a test can fail on a blank or erroring editor.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

#: Debian's Chromium (``apt-get install -y chromium``); Playwright never downloads a browser here.
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
#: Playwright adds --headless and a fresh temporary profile (--user-data-dir) of its own to every launch.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Failed requests of Label Studio 1.23.2 itself that say nothing about our projects (matched on the
#: URL with its query): its front end asks for "tips" at /heidi-tips, which this server version does not
#: serve (404); and the labelling stream asks for the next task after the last one, answered by a 404.
BENIGN = (re.compile(r"/heidi-tips$"), re.compile(r"/api/dm/actions\?id=next_task&"))


def launch(playwright):
    """Headless Chromium with a fresh profile."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's package: apt-get install -y chromium")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=FLAGS, headless=True
    )


class Person:
    """One annotator's browser: their own context, their own login."""

    def __init__(self, browser, inst) -> None:
        self.inst = inst
        self.context = browser.new_context(viewport={"width": 1400, "height": 1250})
        self.context.set_default_timeout(60_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("response", self._response)

    def _benign(self, url: str) -> bool:
        return any(p.search(url) for p in BENIGN)

    def _console(self, message) -> None:
        if message.type == "error" and not self._benign(message.location.get("url", "")):
            self.problems.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400 and not self._benign(response.url):
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def close(self) -> None:
        self.context.close()

    # ---- navigation -----------------------------------------------------------------------
    def login(self, email: str | None = None, password: str | None = None, url: str | None = None) -> bool:
        """Log in through the login form; True when the server let us in."""
        page = self.page
        page.goto(f"{url or self.inst.url}/user/login/")
        page.fill("input[name=email]", email or self.inst.account.email)
        page.fill("input[name=password]", password or self.inst.account.password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return "/user/login" not in page.url

    def open(self, path: str) -> None:
        self.page.goto(f"{self.inst.url}{path}")
        self.page.wait_for_load_state("networkidle")

    def close_instructions(self) -> None:
        """Close the instructions panel that opens before labelling (its close button, else Escape)."""
        page = self.page
        title = page.get_by_text("Labeling Instructions")
        if title.count():
            page.keyboard.press("Escape")
            title.first.wait_for(state="hidden")

    # ---- the labelling screen ---------------------------------------------------------------
    def wait_for_editor(self, instruction: str) -> None:
        """Wait until the editor shows the instruction and the questions; fail on any recorded error."""
        page = self.page
        page.get_by_text(instruction, exact=True).first.wait_for()
        for header in ("Is the claimed category correct?", "Decision"):
            page.get_by_text(header, exact=True).first.wait_for()
        page.get_by_test_id("bottombar-submit-button").wait_for()
        self.assert_no_problems()

    def assert_no_problems(self) -> None:
        assert not self.problems, "the browser reported:\n" + "\n".join(self.problems)

    def choice(self, label: str):
        """The checkbox of a choice, by its label."""
        return self.page.locator(f'input.ant-checkbox-input[name="{label}"]')

    def tick(self, label: str) -> None:
        self.page.locator("label.ant-checkbox-wrapper", has=self.choice(label)).click()
        assert self.choice(label).is_checked()

    def type_correction(self, text: str) -> None:
        self.page.get_by_placeholder("The full corrected instruction").fill(text)

    def submit(self) -> None:
        self.page.get_by_test_id("bottombar-submit-button").click()

    def checked_choices(self) -> list[str]:
        return [
            box.get_attribute("name") or "?"
            for box in self.page.locator("input.ant-checkbox-input, input[type=radio]").all()
            if box.is_checked()
        ]

    def html(self) -> str:
        return self.page.content()

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

"""Small Playwright helpers shared by the browser tests and the screenshot script."""

from __future__ import annotations

import time

BOT = "#chatbot .message.bot, #chatbot [data-testid='bot']"
PLACEHOLDERS = {"", "…", "Loading content"}


def wait_for_answer(page, timeout: float = 60.0, settle: float = 0.8):
    """The last bot message once it has real text that stopped changing and the answer is over (Stop has
    turned back into Send: the last update, with the cited cards marked, has been drawn)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    stop = page.locator("#chat-input button.stop-button")
    while time.monotonic() < deadline:
        bots = page.locator(BOT)
        text = bots.last.inner_text().strip() if bots.count() else ""
        if text != last:
            last, since = text, time.monotonic()
        elif (text not in PLACEHOLDERS and "Loading content" not in text and time.monotonic() - since >= settle
              and not (stop.count() and stop.first.is_visible())):
            return bots.last
        time.sleep(0.1)
    raise TimeoutError(f"no settled answer within {timeout} s (last text: {last!r})")


def ask(page, text: str, files=()):
    """Attach files, type the question, press Enter, and return the settled answer."""
    if files:
        page.locator("#chat-input input[type=file]").set_input_files([str(f) for f in files])
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")
    page.wait_for_timeout(300)
    return wait_for_answer(page)

"""Renew the README's screenshots (`make screenshots`): the demo council in a fresh folder,
served on a loopback port, each page as its person sees it in Debian's Chromium, at 1100 px
(and one at 375 px). Run from the project root; writes docs/screenshots/*.png."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
DRP = Path(sys.executable).parent / "drp"
PASSWORD = "demo-password-2026"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="drp-shots-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DRP_DATABASE_URL": f"sqlite:///{folder}/drp.db",
           "DRP_MAIL_DIR": str(folder / "mail"), "DRP_BASE_URL": base}
    subprocess.run([str(DRP), "demo"], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    server = subprocess.Popen([str(DRP), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])

            def page_as(user: str | None, width: int = 1100) -> object:
                page = chromium.new_context(base_url=base, locale="en-GB",
                                            viewport={"width": width, "height": 900}).new_page()
                if user:
                    page.goto("/login")
                    page.fill("#username", user)
                    page.fill("#password", PASSWORD)
                    page.get_by_role("button", name="Sign in", exact=True).click()
                    page.wait_for_url(lambda url: "/login" not in url)
                return page

            def shot(page: object, name: str) -> None:
                page.screenshot(path=str(HERE / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
                print(f"docs/screenshots/{name}.png")

            page = page_as(None)
            page.goto("/login")
            shot(page, "sign-in")
            iro = page_as("iro.patel")
            iro.goto("/my-alerts")
            shot(iro, "iro-my-alerts")
            iro.goto("/alerts/new")
            iro.fill("#summary", "Contact with birth mother cancelled three times this month")
            iro.get_by_role("button", name=re.compile("Suggest a theme")).click()
            iro.wait_for_load_state()
            shot(iro, "iro-raise-with-suggestion")
            tm = page_as("tm.jones")
            tm.goto("/inbox")
            first = tm.locator("main table a[href^='/alerts/']").first.get_attribute("href")
            tm.goto(first)
            shot(tm, "manager-alert-page")
            hos = page_as("hos.smith")
            hos.goto("/")
            shot(hos, "head-of-service-figures")
            hos.goto("/outstanding")
            shot(hos, "head-of-service-outstanding")
            small = page_as("tm.jones", width=375)
            small.goto("/inbox")
            shot(small, "manager-inbox-375px")
            chromium.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

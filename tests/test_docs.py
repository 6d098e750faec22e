"""The docs site as a reader meets it: built, every local link and image there, and in headless
chromium.

The site is ``FMLIB_DOCS_HTML`` when that names a built site (``make test`` builds it first with
``make docs`` and passes it), else this module builds it into a temporary folder with the command
``make docs`` runs (warnings as errors, the tutorials executed in smoke mode: minutes).

* Every page of the build is parsed: each local ``href`` and ``src`` (links, images, scripts, style
  sheets) must name a file of the build, and each ``#fragment`` an id of its target page.
* In chromium (served over HTTP on a free localhost port): every toctree entry of the index is
  followed and shows its page with a title and its images loaded; the search page finds
  "FisherMask". Screenshots go to a new ``/tmp/fmlib-docs-test-*`` folder (its path is printed).

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium``, as ``tests/test_browser.py``:
without them the browser test skips, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from tests.test_browser import browser_paths, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 1800  # s: the whole build, six notebooks executed on 2 busy cores
PAGE_TIMEOUT = 60  # s: a page (and its images) loaded, search results shown

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site's folder (holding ``index.html``)."""
    given = os.environ.get("FMLIB_DOCS_HTML")
    if given:
        html = Path(given)
        if not html.is_absolute():
            html = ROOT / html
        assert (html / "index.html").is_file(), (
            f"FMLIB_DOCS_HTML={given}: no index.html there (run make docs)"
        )
        return html
    out = tmp_path_factory.mktemp("docs")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-q",
        "-d",
        str(out / "doctrees"),
        str(ROOT / "docs"),
        str(out / "html"),
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "FMLIB_DOCS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"the docs build failed ({' '.join(command)}):\n"
        f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    )
    return out / "html"


class Page(HTMLParser):
    """A page's ids and the local URLs it points at (``href`` of a and link, ``src`` of img and
    script)."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        url = (
            attrs.get("href")
            if tag in ("a", "link")
            else attrs.get("src")
            if tag in ("img", "script")
            else None
        )
        # local: no http:, mailto:, data:
        if url and not urlsplit(url).scheme and not url.startswith("//"):
            self.refs.append((tag, url))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_local_link_and_image_of_every_page_exists(site):
    pages = {path: parse(path) for path in sorted(site.rglob("*.html"))}
    assert len(pages) > 20, f"only {len(pages)} pages in {site}"
    broken = []
    for path, page in pages.items():
        for tag, url in page.refs:
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(site)}: <{tag}> {url}"
            if not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{where}: no file {target}")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in pages[target].ids
            ):
                broken.append(f"{where}: no id {parts.fragment!r} in {target.relative_to(site)}")
    assert broken == [], f"{len(broken)} broken local links or images:\n" + "\n".join(broken[:50])


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on a free localhost port, as a host would serve it; yields its base
    URL."""
    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request in the test output
        pass


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    # no Selenium Manager
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


IMAGES_LOADED = "return Array.from(document.images).every(i => i.complete);"
BROKEN_IMAGES = (
    "return Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src);"
)


def test_the_site_in_chromium_navigation_images_and_search(site, server, browser):
    from selenium.webdriver.common.by import By

    shots = Path(tempfile.mkdtemp(prefix="fmlib-docs-test-"))  # kept after pytest's tmp
    print(f"screenshots: {shots}")

    def open_page(url: str, shot: str | None = None) -> None:
        browser.get(url)
        wait_for(
            lambda: browser.execute_script(IMAGES_LOADED),
            PAGE_TIMEOUT,
            f"the images of {url} to load",
        )
        assert (
            browser.title and "404" not in browser.title and "Error response" not in browser.title
        ), (url, browser.title)
        assert browser.find_elements(By.CSS_SELECTOR, "article h1"), f"{url}: no page title (h1)"
        assert browser.execute_script(BROKEN_IMAGES) == [], f"{url}: images that did not load"
        if shot:
            browser.save_screenshot(str(shots / f"{shot}.png"))

    open_page(server, "index")
    entries = browser.find_elements(
        By.CSS_SELECTOR, "article .toctree-wrapper a.reference.internal"
    )
    # in order, once each
    links = list(dict.fromkeys(a.get_attribute("href").split("#")[0] for a in entries))
    expected = [
        "getting-started",
        "tutorials/index",
        "guide/index",
        "results/index",
        "api/index",
        "changelog",
    ]
    assert [e for e in expected if not any(link.endswith(f"/{e}.html") for link in links)] == [], (
        links
    )
    followed = []
    for link in links:
        open_page(link)
        followed.append(link)
    # sections, their pages, API
    assert len(followed) >= 30, f"the index's toctree leads to {len(followed)} pages only"

    # the pages a reader checks by eye, shot for a look
    for name, path in (
        ("tutorial", "tutorials/1_fisher_primer.html"),
        ("results", "results/claim.html"),
        ("api", "api/fmlib.fisher.html"),
    ):
        open_page(urljoin(server, path), name)
    tutorial = parse(site / "tutorials" / "2_active_learning.html")
    figures = [url for tag, url in tutorial.refs if tag == "img" and url.startswith("../_images/")]
    assert figures, "a tutorial without figures: were the notebooks executed?"

    browser.get(urljoin(server, "search.html?q=FisherMask"))
    results = lambda: browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")  # noqa: E731
    wait_for(lambda: len(results()) > 0, PAGE_TIMEOUT, "search results for 'FisherMask'")
    summary = lambda: browser.find_element(By.CSS_SELECTOR, "#search-results .search-summary").text  # noqa: E731
    # results are shown one by one
    wait_for(lambda: "found" in summary().lower(), PAGE_TIMEOUT, "the search to finish")
    found = [r.find_element(By.TAG_NAME, "a").get_attribute("href") for r in results()]
    browser.save_screenshot(str(shots / "search.png"))
    assert any("results/claim.html" in url for url in found), found

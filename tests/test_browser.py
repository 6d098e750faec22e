"""The primer in a real browser: JupyterLab, headless Debian chromium driven by Selenium.

A copy of ``notebooks/fisher_primer.ipynb`` is opened in JupyterLab (a server on a free localhost
port, a token, settings and runtime files in a temporary folder), every cell is run, the fraction
slider of the live mask figure is dragged, and the test checks that the figure was redrawn (a new
image, other pixels) and that no cell and no live figure shows an error. A screenshot goes to
a new ``/tmp/fmlib-browser-test-*`` folder (its path is printed; ``pytest -s`` shows it).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them) and ``selenium``
(the ``test`` extra). Selenium is given the system chromedriver and chromium, so it never runs
Selenium Manager (which would try to download a browser). Without chromium the test skips,
except under CI (``CI=true``), where it fails: CI must not skip it silently.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "fisher_primer.ipynb"
START_TIMEOUT = 120  # s: the Jupyter server answering, JupyterLab loaded, the kernel ready
RUN_TIMEOUT = 420  # s: every cell of the primer run (smoke: ~1 min on 2 busy cores)
REDRAW_TIMEOUT = 90  # s: a slider moved -> the kernel draws -> a new image in the page

pytestmark = [pytest.mark.slow, pytest.mark.notebook]


def browser_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)`` from the system, or skip (fail under CI) saying what is
    missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [
        name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if path is None
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        reason = (
            f"the browser test needs {', '.join(missing)}: apt-get install chromium"
            " chromium-driver, or make test"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return chromium, driver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition()`` until it returns something truthy (returned) or ``timeout`` s pass
    (fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(interval)


class JupyterLab:
    """A JupyterLab server in its own process group, on ``root``, with nothing read from the user's
    Jupyter configuration and nothing written outside ``tmp``."""

    def __init__(self, root: Path, tmp: Path):
        self.root, self.port, self.token = root, free_port(), os.urandom(16).hex()
        settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)  # no news or update pop-ups over the notebook
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        # smoke: a small primer, live figures built and checked
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "FMLIB_SMOKE": "1",
        }
        env.pop("MPLBACKEND", None)  # the kernel's figures inline, as for a user
        self.log = tmp / "jupyterlab.log"
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={tmp / 'settings'}",
            f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(
                "JupyterLab exited with"
                f" {self.process.returncode}:\n{self.log.read_text()[-3000:]}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL to its process group if it
        lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server's group: its kernels too
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


@pytest.fixture
def lab(tmp_path):
    browser_paths()  # skip or fail before starting anything
    root = tmp_path / "lab"
    root.mkdir()
    # JupyterLab saves what it runs: never into the checkout
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    server = JupyterLab(root, tmp_path)
    try:
        wait_for(server.ready, START_TIMEOUT, "the Jupyter server to answer")
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # the page's console, for failure messages
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
    # the driver's path given: Selenium Manager (and its downloads) is skipped
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(START_TIMEOUT)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def page(browser, code: str, *args):
    """``code`` run in the page (synchronously: a call never outlasts Selenium's HTTP timeout);
    None while the page cannot run it yet (still loading)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return browser.execute_script(code, *args)
    except WebDriverException:
        return None


def console(browser) -> str:
    """The page's console messages so far."""
    return "\n".join(f"{e['level']} {e['message']}" for e in browser.get_log("browser"))[-6000:]


# JavaScript run in the page: JupyterLab's app object (expose_app_in_browser) and the open notebook.
# Long work (Run All Cells) is started by one call and polled by others.
KERNEL_IDLE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const session = panel && panel.sessionContext && panel.sessionContext.session;
const kernel = session && session.kernel;
return !!(panel && panel.sessionContext.isReady && kernel && kernel.status === 'idle');
"""
RUN_ALL = """
window.fmlibRunAll = 'running';
window.jupyterapp.commands.execute('notebook:run-all-cells').then(
  ok => { window.fmlibRunAll = String(ok); }, error => { window.fmlibRunAll = 'error: ' + error; });
"""
RUN_ALL_RESULT = "return window.fmlibRunAll === 'running' ? null : window.fmlibRunAll;"
CELL_ERRORS = """
const panel = window.jupyterapp.shell.currentWidget;
return panel.content.widgets.filter(cell => cell.model.type === 'code').map(cell => {
  const json = cell.model.toJSON();
  return {count: json.execution_count, errors: json.outputs.filter(o => o.output_type === 'error')
          .map(o => o.ename + ': ' + o.evalue + '\\n' + o.traceback.join('\\n'))};
});
"""
IMAGE_LOADED = "return arguments[0].complete && arguments[0].naturalWidth > 0;"


def test_primer_runs_in_jupyterlab_and_a_slider_redraws_its_figure(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    # kept after pytest's tmp
    screenshot = Path(tempfile.mkdtemp(prefix="fmlib-browser-test-")) / "primer_live_mask.png"
    try:
        browser.get(lab.url(f"lab/tree/{NOTEBOOK.name}"))
        wait_for(
            lambda: page(browser, KERNEL_IDLE), START_TIMEOUT, "the notebook and an idle kernel"
        )
        browser.execute_script(RUN_ALL)
        ran = wait_for(
            lambda: page(browser, RUN_ALL_RESULT),
            RUN_TIMEOUT,
            "Run All Cells to finish",
            interval=2,
        )
        cells = browser.execute_script(CELL_ERRORS)
        errors = [e for cell in cells for e in cell["errors"]]
        assert errors == [], "\n\n".join(errors)
        assert ran == "true" and all(isinstance(cell["count"], int) for cell in cells), (
            f"Run All Cells returned {ran}; execution counts {[c['count'] for c in cells]}\n"
            f"browser log:\n{console(browser)}\nserver log:\n{lab.log.read_text()[-4000:]}"
        )
        wait_for(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, ".fmlib-live img")) == 3,
            REDRAW_TIMEOUT,
            "the three live figures to render",
        )
        shown = browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").text
        assert "Error displaying widget" not in shown and "Traceback" not in shown

        live = browser.find_element(By.CSS_SELECTOR, ".fmlib-live-mask")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", live)
        image = live.find_element(By.CSS_SELECTOR, "img")
        wait_for(
            lambda: page(browser, IMAGE_LOADED, image),
            REDRAW_TIMEOUT,
            "the live mask figure to load",
        )
        readout = live.find_element(By.CSS_SELECTOR, ".widget-readout")
        before_src, before_pixels, before_value = (
            image.get_attribute("src"),
            image.screenshot_as_png,
            readout.text,
        )

        handle = live.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        ActionChains(browser).drag_and_drop_by_offset(
            handle, 15, 0
        ).perform()  # as a user drags it: 0.25 -> ~0.6

        wait_for(
            lambda: readout.text != before_value, REDRAW_TIMEOUT, "the slider's readout to change"
        )
        wait_for(
            lambda: image.get_attribute("src") != before_src,
            REDRAW_TIMEOUT,
            f"the figure to be redrawn after moving the fraction from {before_value} to"
            f" {readout.text}",
        )
        wait_for(
            lambda: page(browser, IMAGE_LOADED, image), REDRAW_TIMEOUT, "the redrawn figure to load"
        )
        assert image.screenshot_as_png != before_pixels, "a new image, but the same pixels"
        assert float(readout.text) > float(before_value)  # dragged right: a larger fraction
        assert live.find_elements(By.CSS_SELECTOR, ".fmlib-live-error") == [], live.text
        assert browser.execute_script(CELL_ERRORS) == cells  # moving it raised nothing in any cell
    finally:
        browser.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")

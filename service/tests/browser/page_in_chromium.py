"""The service's HTML page in a real browser: headless Chromium, driven through chromedriver.

Starts the real hello-k8s binary on 127.0.0.1 (ports given), waits for its "listening" line,
loads GET / in Chromium (whose Accept header prefers text/html, so the service answers with the
askama page) and asserts, from what the browser itself reports:

  - the greeting is rendered: the page's <h1>, read from the DOM, is displayed and reads
    GREETING, and so does the document's title;
  - the page loads nothing from elsewhere: every request the page made (the DevTools Network
    events of chromedriver's performance log) went to the service's own origin;
  - the console logged no error (chromedriver's browser log: console messages, uncaught
    exceptions, failed loads, refused content, at level SEVERE);
  - a screenshot is written (atomically) for a person to look at.

Run by scripts/browser-test.sh (make browser-test), which checks the tools and builds the binary.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

# What GET / greets with (the origin's text, the contract's GREETING).
GREETING = "Hello World from Kubernetes!"
# Headless on a machine without a display or a network: no sandbox (run as root), no GPU, and
# none of Chromium's own background connections (updates, sync, field trials), which the
# closed network refuses and which would fill the logs.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
]
# Bounds on each wait; the waits themselves end on the event (a line, a load, an exit).
START_SECONDS = 30
LOAD_SECONDS = 30
STOP_SECONDS = 15


class Failure(Exception):
    """An assertion about the page that did not hold."""


def log(message):
    print(message, file=sys.stderr, flush=True)


class Server:
    """The hello-k8s binary, with a clean environment, its output read line by line."""

    def __init__(self, binary, port, probe_port):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(port),
            "PROBE_PORT": str(probe_port),
            # Stopped by SIGTERM at the end: no endpoints to leave, so no delay before the drain.
            "DRAIN_DELAY_SECONDS": "0",
        }
        self.lines = []
        self._queue = queue.Queue()
        self.process = subprocess.Popen(
            [binary],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def wait_listening(self):
        """Returns once the binary logs that it listens; fails when it exits or stays silent."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"hello-k8s logged no 'listening' line within {START_SECONDS} s")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise Failure(f"hello-k8s exited ({self.process.wait()}) before listening")
            if "listening" in line:
                return

    def stop(self):
        """SIGTERM to the binary's PID, then its exit status (SIGKILL past STOP_SECONDS)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise Failure(f"hello-k8s did not stop within {STOP_SECONDS} s of SIGTERM")


def start_browser(chromium, chromedriver, driver_port, profile, driver_log):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # browser: the console (and failed loads, refused content, uncaught exceptions);
    # performance: the DevTools Network events, one per request the page makes.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Both paths given: Selenium Manager, which would look for (and download) a driver, is not used.
    service = Service(executable_path=chromedriver, port=driver_port, log_output=driver_log)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(LOAD_SECONDS)
    return driver


def drain(driver, events):
    """Moves what chromedriver's performance log gathered since the last call into events."""
    events.extend(json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))


def is_navigation_to(event, url):
    return event["method"] == "Network.requestWillBeSent" and event["params"]["request"]["url"] == url


def network_idle(driver, events, page_url):
    """True once the document of page_url has had its networkIdle lifecycle event (no request
    in flight for 500 ms, Chromium's rule); drains the log into events first."""
    drain(driver, events)
    loaders = {e["params"]["loaderId"] for e in events if is_navigation_to(e, page_url)}
    return any(
        e["method"] == "Page.lifecycleEvent"
        and e["params"]["name"] == "networkIdle"
        and e["params"]["loaderId"] in loaders
        for e in events
    )


def requests_of(events, page_url):
    """Every request from the navigation to page_url on, in order: method, url, outcome."""
    requests = {}  # by request id, in the order of their first event (dicts keep it)
    started = False
    for event in events:
        method, params = event["method"], event.get("params", {})
        started = started or is_navigation_to(event, page_url)
        if not started:
            continue
        rid = params.get("requestId")
        if method == "Network.requestWillBeSent":
            request = params["request"]
            requests[rid] = {"method": request["method"], "url": request["url"], "outcome": "no answer"}
        elif method == "Network.webSocketCreated":
            requests[rid] = {"method": "WEBSOCKET", "url": params["url"], "outcome": "opened"}
        elif method == "Network.responseReceived" and rid in requests:
            response = params["response"]
            requests[rid]["outcome"] = f"{response['status']} {response.get('mimeType', '')}".strip()
        elif method == "Network.loadingFailed" and rid in requests:
            requests[rid]["outcome"] = f"failed: {params.get('errorText', '?')}"
    return list(requests.values())


def check_page(driver, origin, screenshot):
    """Loads the page and asserts on it; returns the failures (an empty list: it passed)."""
    failures = []
    # The browser opens on its own start page (chrome://new-tab-page-third-party), whose requests
    # are not the page's: leave it for about:blank, set aside what was logged until then, and
    # count requests from the page's own navigation request on (requests_of).
    driver.get("about:blank")
    before = len(driver.get_log("performance")) + len(driver.get_log("browser"))
    log(f"{before} log entries of the start page set aside; GET {origin}/")
    # Page.lifecycleEvent (networkIdle among them) into the performance log.
    driver.execute_cdp_cmd("Page.setLifecycleEventsEnabled", {"enabled": True})
    events = []
    try:
        driver.get(origin + "/")
    except WebDriverException as err:
        failures.append(f"GET {origin}/ did not load within {LOAD_SECONDS} s: {err.msg}")
    else:
        # The load event comes before what the page or the browser fetch after it (the icon, a
        # script's late request): wait for Chromium's own networkIdle of the page's document.
        loaded = time.monotonic()
        try:
            WebDriverWait(driver, LOAD_SECONDS, poll_frequency=0.1).until(
                lambda d: network_idle(d, events, origin + "/")
            )
            log(f"network idle {time.monotonic() - loaded:.1f} s after the load event")
        except TimeoutException:
            failures.append(f"the page's network was not idle within {LOAD_SECONDS} s of its load")

    # The screenshot first: it is what a person looks at when anything below fails.
    png = driver.get_screenshot_as_png()
    if not png:
        failures.append("the screenshot is empty")
    else:
        os.makedirs(os.path.dirname(screenshot), exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(screenshot), suffix=".tmp", delete=False) as tmp:
            tmp.write(png)
        os.replace(tmp.name, screenshot)
        if os.path.getsize(screenshot) == 0:
            failures.append(f"{screenshot} is empty")
        log(f"screenshot: {screenshot} ({len(png)} bytes)")

    headings = driver.find_elements(By.TAG_NAME, "h1")
    if len(headings) != 1:
        failures.append(f"expected one <h1> on the page, found {len(headings)}")
    else:
        heading = headings[0]
        text = heading.text
        log(f"<h1>: {text!r} (displayed: {heading.is_displayed()})")
        if text != GREETING:
            failures.append(f"the <h1> reads {text!r}, expected {GREETING!r}")
        if not heading.is_displayed():
            failures.append("the <h1> is not displayed")
    if driver.title != GREETING:
        failures.append(f"the title reads {driver.title!r}, expected {GREETING!r}")

    # Read after the load and the screenshot: whatever the page requested by then is listed.
    drain(driver, events)
    requests = requests_of(events, origin + "/")
    log(f"requests of the page ({len(requests)}):")
    for request in requests:
        log(f"  {request['method']} {request['url']} -> {request['outcome']}")
    if not requests:
        failures.append(f"the performance log shows no request for {origin}/ (the page's own)")
    own = urlsplit(origin)
    for request in requests:
        url = urlsplit(request["url"])
        if (url.scheme, url.netloc) != (own.scheme, own.netloc):
            failures.append(f"the page loaded from elsewhere: {request['method']} {request['url']} ({request['outcome']})")

    console = driver.get_log("browser")
    log(f"console ({len(console)} entries):")
    for entry in console:
        log(f"  {entry['level']} {entry.get('source', '?')}: {entry['message']}")
    for entry in console:
        if entry["level"] == "SEVERE":
            failures.append(f"console error ({entry.get('source', '?')}): {entry['message']}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the hello-k8s binary")
    parser.add_argument("--port", type=int, required=True, help="a free port for the service (127.0.0.1)")
    parser.add_argument("--probe-port", type=int, required=True, help="a free port for its probe listener")
    parser.add_argument("--driver-port", type=int, required=True, help="a free port for chromedriver")
    parser.add_argument("--chromium", required=True, help="the chromium binary")
    parser.add_argument("--chromedriver", required=True, help="the chromedriver binary")
    parser.add_argument("--out", required=True, help="directory for the screenshot and the logs")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    screenshot = os.path.abspath(os.path.join(args.out, "page.png"))
    server_log = os.path.join(args.out, "hello-k8s.log")
    driver_log = os.path.join(args.out, "chromedriver.log")
    origin = f"http://127.0.0.1:{args.port}"
    profile = tempfile.mkdtemp(prefix="browser-test-profile.")
    failures, server, driver = [], None, None
    try:
        server = Server(args.bin, args.port, args.probe_port)
        server.wait_listening()
        log(f"hello-k8s (pid {server.process.pid}) listens on {origin}")
        driver = start_browser(args.chromium, args.chromedriver, args.driver_port, profile, driver_log)
        log(f"{driver.capabilities.get('browserName')} {driver.capabilities.get('browserVersion')} via chromedriver (log: {driver_log})")
        failures = check_page(driver, origin, screenshot)
    except Failure as err:
        failures.append(str(err))
    except WebDriverException as err:
        failures.append(f"chromedriver: {err.msg}")
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            try:
                status = server.stop()
                if status != 0:
                    failures.append(f"hello-k8s exited with {status} after SIGTERM, expected 0")
            except Failure as err:
                failures.append(str(err))
            with open(server_log, "w") as out:
                out.write("\n".join(server.lines) + "\n")
        shutil.rmtree(profile, ignore_errors=True)

    if failures:
        log(f"FAILED: the page in Chromium ({len(failures)} failure(s); hello-k8s's output: {server_log}):")
        for failure in failures:
            log(f"  - {failure}")
        return 1
    log(f"passed: the page in Chromium (screenshot: {screenshot})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cdp.py - drive the system Chromium over the DevTools protocol (a pipe).

Chromium runs headless with --remote-debugging-pipe: it reads commands on
fd 3 and writes answers and events on fd 4, each message one JSON text
ended by a NUL byte. No websocket library, no npm, no Playwright.

    with Browser() as b:
        b.goto("http://127.0.0.1:8200/ui/")
        b.wait_for("#login-token")
        b.type("#login-token", token)
        b.press("Enter")
        b.wait_for('[data-page="secrets"][data-ready="1"]')
        b.screenshot("secrets.png")        # into $COFFER_UI_ARTIFACTS
        assert b.console_errors() == []

Console errors (console.error, Log entries of level error such as CSP
violations and failed loads of the UI's files; a 4xx from /v1/ is in
api_errors() instead) and uncaught exceptions are collected for the
whole life of the browser; tests assert there are none. Every request the
page makes is recorded (b.requests()), so a test can check that nothing
left the origin.

Environment:
    COFFER_CHROMIUM       the browser (default /usr/bin/chromium)
    COFFER_UI_ARTIFACTS   where screenshots go (default build/ui-artifacts/)
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class CDPError(RuntimeError):
    """A command failed, or the page threw while evaluating."""


def chromium_path():
    for p in (os.environ.get("COFFER_CHROMIUM"), "/usr/bin/chromium",
              "/usr/bin/chromium-browser"):
        if p and os.access(p, os.X_OK):
            return p
    return None


def artifacts_dir():
    d = os.environ.get("COFFER_UI_ARTIFACTS") or os.path.join(
        ROOT, "build", "ui-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class Browser:
    """One headless Chromium with one page (tab)."""

    def __init__(self, width=1200, height=900, timeout=10.0):
        self.width = width
        self.height = height
        self.timeout = timeout
        self._proc = None
        self._profile = None
        self._wfile = None
        self._rfile = None
        self._next_id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._answers = {}
        self._errors = []
        self._api_errors = []
        self._requests = []
        self._closed = False
        self._session = None
        self._reader = None

    # ------------------------------------------------------------ lifetime

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium not found (apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="coffer-chromium-")
        args = [
            exe, "--headless", "--remote-debugging-pipe",
            "--user-data-dir=" + self._profile,
            "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-extensions",
            "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--disable-default-apps",
            "--metrics-recording-only", "--mute-audio",
            "--window-size=%d,%d" % (self.width, self.height),
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root else
        args.append("about:blank")
        # Our ends: we write commands to to_r (its fd 3), read from from_w
        # (its fd 4).
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()

        def child_fds():
            # Move both ends above 4 first so the dup2s cannot clobber them.
            a = os.dup(to_r) if to_r < 5 else to_r
            b = os.dup(from_w) if from_w < 5 else from_w
            while a < 5:
                a = os.dup(a)
            while b < 5:
                b = os.dup(b)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=child_fds, close_fds=False)
        os.close(to_r)
        os.close(from_w)
        self._wfile = os.fdopen(to_w, "wb", buffering=0)
        self._rfile = os.fdopen(from_r, "rb", buffering=0)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        target = self._send("Target.createTarget", {"url": "about:blank"},
                            session=False)["targetId"]
        self._session = self._send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True},
                                   session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._send(domain + ".enable", {})
        self._send("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height,
            "deviceScaleFactor": 1, "mobile": False})

    def close(self):
        if self._proc is None:
            return
        try:
            self._send("Browser.close", {}, session=False, timeout=3)
        except Exception:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with self._lock:
            self._closed = True
            self._cond.notify_all()
        for f in (self._wfile, self._rfile):
            try:
                f.close()
            except Exception:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)
        self._proc = None

    # ------------------------------------------------------------ protocol

    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = self._rfile.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(raw.decode("utf-8"))
                except ValueError:
                    continue
                self._dispatch(msg)
        with self._lock:
            self._closed = True
            self._cond.notify_all()

    def _dispatch(self, msg):
        if "id" in msg:
            with self._lock:
                self._answers[msg["id"]] = msg
                self._cond.notify_all()
            return
        method = msg.get("method", "")
        p = msg.get("params", {})
        err = None
        if method == "Runtime.consoleAPICalled" and p.get("type") in (
                "error", "assert"):
            err = "console.%s: %s" % (p.get("type"), " ".join(
                str(a.get("value", a.get("description", "")))
                for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception", {})
            err = "uncaught: %s (%s:%s)" % (
                exc.get("description") or d.get("text"), d.get("url", ""),
                d.get("lineNumber", ""))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                err = "log %s: %s %s" % (e.get("source"), e.get("text"),
                                         e.get("url", ""))
                # An API call answered 4xx/5xx is the UI's business (it
                # shows the server's error); a failed load of the UI's own
                # files stays an error.
                if e.get("source") == "network" and "/v1/" in e.get("url", ""):
                    with self._lock:
                        self._api_errors.append(err)
                    err = None
        elif method == "Network.requestWillBeSent":
            with self._lock:
                self._requests.append(p.get("request", {}).get("url", ""))
        if err is not None:
            with self._lock:
                self._errors.append(err)

    def _send(self, method, params=None, session=True, timeout=None):
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self._session is not None:
            msg["sessionId"] = self._session
        self._wfile.write(json.dumps(msg).encode("utf-8") + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout + 20)
        with self._lock:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError("no answer to %s" % method)
                self._cond.wait(left)
            ans = self._answers.pop(mid)
        if "error" in ans:
            raise CDPError("%s: %s" % (method, ans["error"].get("message")))
        return ans.get("result", {})

    # ----------------------------------------------------------------- API

    def eval(self, js):
        """The value of the JS expression (awaited if it is a Promise)."""
        r = self._send("Runtime.evaluate", {
            "expression": js, "returnByValue": True, "awaitPromise": True,
            "userGesture": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError("JS error: %s" % (
                d.get("exception", {}).get("description") or d.get("text")))
        return r.get("result", {}).get("value")

    def goto(self, url, timeout=None):
        """Loads url and waits until the document is complete."""
        r = self._send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError("navigate %s: %s" % (url, r["errorText"]))
        self.wait_until("document.readyState === 'complete'", timeout)

    def wait_until(self, js, timeout=None):
        """Polls the JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                v = self.eval(js)
            except CDPError:
                v = None  # the page is navigating
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for: %s" % js)
            time.sleep(0.05)

    def wait_for(self, css, timeout=10):
        """Waits until an element matches css."""
        return self.wait_until("!!document.querySelector(%s)" % json.dumps(css),
                               timeout)

    def wait_gone(self, css, timeout=10):
        return self.wait_until("!document.querySelector(%s)" % json.dumps(css),
                               timeout)

    def _el(self, css):
        return "document.querySelector(%s)" % json.dumps(css)

    def exists(self, css):
        return bool(self.eval("!!" + self._el(css)))

    def click(self, css):
        """Clicks the element (waits for it first)."""
        self.wait_for(css)
        self.eval("(e => { e.scrollIntoView({block: 'center'}); e.click(); "
                  "return true; })(%s)" % self._el(css))

    def focus(self, css):
        self.wait_for(css)
        self.eval("(e => { e.focus(); return document.activeElement === e; })"
                  "(%s)" % self._el(css))

    def type(self, css, text):
        """Replaces the field's text with text, typed as keyboard input."""
        self.wait_for(css)
        self.eval("(e => { e.focus(); if (e.select) e.select(); return true; })"
                  "(%s)" % self._el(css))
        if self.eval("(e => e.value !== undefined && e.value !== '')(%s)"
                     % self._el(css)):
            self.press("Delete")
        if text:
            self._send("Input.insertText", {"text": text})

    def press(self, key):
        """Presses one key (Enter, Escape, Tab, ArrowDown, Delete, a letter)."""
        codes = {"Enter": 13, "Escape": 27, "Tab": 9, "Delete": 46,
                 "Backspace": 8, "ArrowDown": 40, "ArrowUp": 38, " ": 32}
        p = {"key": key, "code": key,
             "windowsVirtualKeyCode": codes.get(key, ord(key[0].upper())),
             "nativeVirtualKeyCode": codes.get(key, ord(key[0].upper()))}
        if key == "Enter":
            p["text"] = "\r"
        down = dict(p, type="keyDown" if "text" in p else "rawKeyDown")
        self._send("Input.dispatchKeyEvent", down)
        self._send("Input.dispatchKeyEvent", dict(p, type="keyUp"))

    def text(self, css):
        """The element's visible text (innerText), or None if absent."""
        return self.eval("(e => e ? e.innerText : null)(%s)" % self._el(css))

    def value(self, css):
        return self.eval("(e => e ? e.value : null)(%s)" % self._el(css))

    def active_id(self):
        return self.eval("document.activeElement ? document.activeElement.id : ''")

    def viewport(self, width, height, mobile=False):
        self._send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1,
            "mobile": mobile})

    def screenshot(self, name):
        """Saves a PNG of the page; a bare name goes to the artifacts dir."""
        path = name if os.path.isabs(name) else os.path.join(artifacts_dir(),
                                                              name)
        r = self._send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return path

    def console_errors(self):
        """Console errors and uncaught exceptions seen so far."""
        with self._lock:
            return list(self._errors)

    def clear_console_errors(self):
        with self._lock:
            self._errors.clear()

    def clear(self):
        """Forgets the errors and requests seen so far (a new test case)."""
        with self._lock:
            self._errors.clear()
            self._api_errors.clear()
            self._requests.clear()

    def api_errors(self):
        """API calls (/v1/) the browser logged as failed (4xx/5xx): not
        console errors, since the UI shows them itself."""
        with self._lock:
            return list(self._api_errors)

    def requests(self):
        """URLs of every request the page made so far."""
        with self._lock:
            return list(self._requests)

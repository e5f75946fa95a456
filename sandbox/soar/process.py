"""Running the real ``resilient-circuits`` (run, selftest, customize, config) against the sandbox."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

STARTED_TEXT = "resilient-circuits has started successfully"


def console_script(name="resilient-circuits"):
    """The console script installed next to the running interpreter (the venv's bin directory)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable}")
    return path


def app_config_text(*, rest_port, stomp_port, cafile, logdir, api_key_id="emu-key-id",
                    api_key_secret="emu-key-secret", org="Test Organization", loglevel="INFO",
                    num_workers=5, app_section="", extra_resilient=None, host="localhost", logfile="app.log"):
    """An app.config for the sandbox: [resilient] (soar-runtime.md §8) plus the caller's sections."""
    resilient = {
        "host": host,
        "port": rest_port,
        "org": org,
        "api_key_id": api_key_id,
        "api_key_secret": api_key_secret,
        "cafile": cafile if cafile else "false",
        "stomp_port": stomp_port,
        "num_workers": num_workers,
        "request_max_retries": 1,
        "request_retry_delay": 1,
        "max_connection_retries": 1,
        "logdir": logdir,
        "logfile": logfile,
        "loglevel": loglevel,
    }
    resilient.update(extra_resilient or {})
    lines = ["[resilient]"] + [f"{k} = {v}" for k, v in resilient.items() if v is not None]
    text = "\n".join(lines) + "\n"
    if app_section:
        text += "\n" + textwrap.dedent(app_section).strip() + "\n"
    return text


class ResilientCircuits:
    """One ``resilient-circuits`` installation context: a private HOME, lock file and app.config.

    ``start()`` launches ``resilient-circuits run`` in its own process group and waits for it to
    report that it started; ``command()`` runs any other subcommand with the same environment.
    """

    def __init__(self, workdir, *, rest_port, stomp_port, cafile, app_section="", loglevel="INFO",
                 num_workers=5, api_key_id="emu-key-id", api_key_secret="emu-key-secret",
                 org="Test Organization", extra_resilient=None, env=None, config_text=None):
        self.workdir = os.path.abspath(workdir)
        self.home = os.path.join(self.workdir, "home")
        self.logdir = os.path.join(self.workdir, "logs")
        for folder in (self.workdir, self.home, self.logdir):
            os.makedirs(folder, exist_ok=True)
        self.config_path = os.path.join(self.workdir, "app.config")
        self.lock_path = os.path.join(self.workdir, "resilient_circuits.lock")
        self.console_path = os.path.join(self.workdir, "console.log")
        self.log_path = os.path.join(self.logdir, "app.log")
        if config_text is None:
            config_text = app_config_text(rest_port=rest_port, stomp_port=stomp_port, cafile=cafile,
                                          logdir=self.logdir, api_key_id=api_key_id,
                                          api_key_secret=api_key_secret,
                                          org=org, loglevel=loglevel, num_workers=num_workers,
                                          app_section=app_section, extra_resilient=extra_resilient)
        self.write_config(config_text)
        self.extra_env = dict(env or {})
        self.process = None
        self._console = None
        self._commands = []

    # ------------------------------------------------------------------ configuration
    def write_config(self, text):
        with open(self.config_path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def config_text(self):
        with open(self.config_path, encoding="utf-8") as handle:
            return handle.read()

    def environment(self):
        env = dict(os.environ)
        for key in ("LOGLEVEL", "APP_LOG_DIR", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(key, None)
        env.update({
            "APP_CONFIG_FILE": self.config_path,
            "APP_LOCK_FILE": self.lock_path,
            "HOME": self.home,
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "localhost,127.0.0.1",
            "no_proxy": "localhost,127.0.0.1",
        })
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ run
    def start(self, timeout=60.0, wait=True):
        """Launch ``resilient-circuits run``; with wait, block until it reports it started."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"resilient-circuits is already running (pid {self.process.pid})")
        self._console = open(self.console_path, "ab")
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self._console_offset = os.path.getsize(self.console_path)
        self.process = subprocess.Popen(
            [console_script(), "run"], cwd=self.workdir, env=self.environment(),
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT,
            start_new_session=True)
        if wait:
            try:
                self.wait_for_log(STARTED_TEXT, timeout=timeout)
            except Exception:
                self.stop()
                raise
        return self

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def stop(self, timeout=10.0):
        """SIGTERM the run process group, then SIGKILL; returns the exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(5)
        else:
            self._signal_group(signal.SIGKILL)   # leftovers of the group, if any
        if self._console is not None:
            self._console.close()
            self._console = None
        return proc.returncode

    def stop_all(self):
        """Stop the run process and kill any background command still running."""
        for run in self._commands:
            run.kill()
        self._commands.clear()
        return self.stop()

    def kill(self):
        """SIGKILL the process group (a crash)."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(5)
        return self.stop()

    def _signal_group(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ logs
    def log_text(self, since_start=False):
        """The app log (logdir/app.log), or only what this start() wrote."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                if since_start:
                    handle.seek(getattr(self, "_log_offset", 0))
                return handle.read()
        except FileNotFoundError:
            return ""

    def console_text(self, since_start=False):
        """stdout and stderr of the run process."""
        try:
            with open(self.console_path, encoding="utf-8", errors="replace") as handle:
                if since_start:
                    handle.seek(getattr(self, "_console_offset", 0))
                return handle.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=30.0, since_start=True):
        """Wait until the app log or console matches ``pattern`` (text or compiled regex)."""
        regex = pattern if hasattr(pattern, "search") else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(since_start) + self.console_text(since_start)
            match = regex.search(text)
            if match:
                return match
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"resilient-circuits exited with {self.process.returncode} before logging "
                                   f"{regex.pattern!r}; output:\n{self.console_text(since_start)[-6000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"resilient-circuits did not log {regex.pattern!r} within {timeout}s; "
                                   f"output:\n{self.console_text(since_start)[-6000:]}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ other subcommands
    def command(self, *args, timeout=120.0, input_text=None):
        """Run ``resilient-circuits <args>`` with this context; returns (exit code, stdout+stderr)."""
        return self.command_async(*args, input_text=input_text).wait(timeout)

    def command_async(self, *args, input_text=None):
        """Start ``resilient-circuits <args>`` in the background; ``.wait(timeout)`` gives (code, output)."""
        run = CommandRun(args, [console_script()] + list(args), self.workdir, self.environment(), input_text)
        self._commands.append(run)
        return run

    def selftest(self, package="fn_twilio", timeout=120.0):
        return self.command("selftest", "-l", package, timeout=timeout)

    def customize(self, package="fn_twilio", timeout=120.0):
        return self.command("customize", "-y", "-l", package, timeout=timeout)

    def config_update(self, package="fn_twilio", timeout=60.0):
        return self.command("config", "-u", "-l", package, timeout=timeout)


class CommandRun:
    """A ``resilient-circuits`` subcommand running in its own process group; output goes to a pipe."""

    def __init__(self, args, argv, cwd, env, input_text=None):
        self.args = args
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._input = (input_text or "").encode("utf-8")
        self._result = None

    def wait(self, timeout=120.0):
        """(exit code, stdout+stderr); kills the group and raises TimeoutError when it takes too long."""
        if self._result is not None:
            return self._result
        try:
            out, _ = self.process.communicate(self._input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            out, _ = self.process.communicate()
            raise TimeoutError("resilient-circuits {} did not finish within {}s:\n{}".format(
                " ".join(self.args), timeout, out.decode("utf-8", "replace")[-6000:])) from exc
        self._result = (self.process.returncode, out.decode("utf-8", "replace"))
        return self._result

    def kill(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(5)

"""A local SOAR (REST + STOMP over TLS) with a Twilio emulator, and the app.config to run fn_twilio on it."""
import logging
import os
import shutil
import tempfile

from .broker import StompBroker
from .certs import make_self_signed
from .driver import SoarDriver
from .process import ResilientCircuits
from .rest import SoarRestEmulator

LOG = logging.getLogger(__name__)

API_KEY_ID = "emu-key-id"
API_KEY_SECRET = "emu-key-secret"
SOAR_LOGIN = "soar"
SOAR_PASSCODE = "soar-secret"


def app_export_path():
    """Path of the app's fn_twilio/util/data/export.res (it may not exist yet)."""
    import fn_twilio
    return os.path.join(os.path.dirname(os.path.abspath(fn_twilio.__file__)), "util", "data", "export.res")


def _twilio_emulator_module():
    try:
        from sandbox import twilio_emulator
    except ImportError:
        return None
    return twilio_emulator


def _section_text(name, settings):
    return f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items() if v is not None)


class Sandbox:
    """Certificates, the SOAR REST emulator, the STOMP broker, a Twilio emulator and an app.config.

    ``preload``: None (nothing defined: run ``customize`` first), ``"app"`` (the app's export.res),
    or an export (path or dict). ``extra_functions``: more function names the server defines
    (e.g. the legacy ``twilio_get_responses``). ``twilio``: start a Twilio emulator when available.
    ``app_section``: text of the [fn_twilio_send_sms] section; by default one for the Twilio emulator.
    ``app_settings``: extra ``key: value`` lines for the default section (e.g. poll_interval).
    ``broker``: ``"builtin"`` (the Python broker with its test controls) or ``"activemq"`` (Debian's
    ActiveMQ, for fidelity checks; only ``port``, ``inject`` and ``log_text`` then).
    ``labels``: labelled sections [fn_twilio_send_sms:<label>] added to the default app.config, as
    ``{label: {key: value}}`` (None removes a key). A label whose entry has ``account`` = (account SID,
    auth token, number) gets a Twilio emulator of its own for that account (``twilio_for(label)``);
    the others are sections for the sandbox's Twilio emulator, with their own settings.
    """

    def __init__(self, workdir=None, *, preload=None, extra_functions=(), twilio=True, loglevel="INFO",
                 app_section=None, app_settings=None, num_workers=5, org_id=201, org_name="Test Organization",
                 rest_port=0, stomp_port=0, broker_heartbeat_ms=0, keep_workdir=None, check_preload=True,
                 broker="builtin", labels=None):
        if broker not in ("builtin", "activemq"):
            raise ValueError(f"broker must be 'builtin' or 'activemq', not {broker!r}")
        self.broker_kind = broker
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="soar-sandbox-"))
        self.keep_workdir = (not self._own_workdir) if keep_workdir is None else keep_workdir
        self.preload = preload
        self.extra_functions = list(extra_functions)
        self.want_twilio = twilio
        self.loglevel = loglevel
        self.custom_app_section = app_section
        self.app_settings = dict(app_settings or {})
        self.labels = {label: dict(values) for label, values in (labels or {}).items()}
        self.label_twilio = {}          # label -> the Twilio emulator of a label with an account of its own
        self.num_workers = num_workers
        self.org_id = org_id
        self.org_name = org_name
        self._rest_port = rest_port
        self._stomp_port = stomp_port
        self.broker_heartbeat_ms = broker_heartbeat_ms
        self.check_preload = check_preload
        self.certs = None
        self.rest = None
        self.broker = None
        self.twilio = None
        self.app = None
        self._drivers = []
        self._launchers = []

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        try:
            self.certs = make_self_signed(os.path.join(self.workdir, "certs"))
            preload = self.preload
            if preload == "app":
                preload = app_export_path()
            self.rest = SoarRestEmulator(self.certs, port=self._rest_port, org_id=self.org_id,
                                         org_name=self.org_name, api_key_id=API_KEY_ID,
                                         api_key_secret=API_KEY_SECRET,
                                         preload=preload, extra_functions=self.extra_functions,
                                         check_preload=self.check_preload).start()
            users = {API_KEY_ID: API_KEY_SECRET, SOAR_LOGIN: SOAR_PASSCODE}
            if self.broker_kind == "activemq":
                from .activemq import ActiveMQBroker
                self.broker = ActiveMQBroker(self.certs, os.path.join(self.workdir, "activemq"),
                                             port=self._stomp_port, users=users).start()
            else:
                self.broker = StompBroker(self.certs, port=self._stomp_port, users=users,
                                          heartbeat_ms=self.broker_heartbeat_ms).start()
            module = _twilio_emulator_module() if self.want_twilio else None
            if module is not None:
                self.twilio = module.TwilioEmulator().start()
                for label, values in self.labels.items():
                    if "account" in values:
                        account_sid, auth_token, number = values["account"]
                        self.label_twilio[label] = module.TwilioEmulator(
                            account_sid=account_sid, auth_token=auth_token, numbers=(number,), api_keys={},
                            messaging_services={}).start()
            self.app = self.launcher("app")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for driver in self._drivers:
            driver.close()
        self._drivers.clear()
        for launcher in self._launchers:
            try:
                launcher.stop_all()
            except Exception:  # noqa: BLE001 - keep cleaning up
                LOG.exception("stopping resilient-circuits failed")
        self._launchers.clear()
        for part in (self.broker, self.rest, self.twilio, *self.label_twilio.values()):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001
                    LOG.exception("stopping %r failed", part)
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ the app
    def app_section(self, labels=None, **overrides):
        """The [fn_twilio_send_sms] section for the Twilio emulator (or the custom one given), then the
        sandbox's labelled sections; ``labels`` ({label: {key: value}}) changes those for this text."""
        if self.custom_app_section is not None and not overrides and not labels:
            return self.custom_app_section
        settings = {}
        if self.twilio is not None:
            module = _twilio_emulator_module()
            settings = {"twilio_account_sid": module.ACCOUNT_SID, "twilio_auth_token": module.AUTH_TOKEN,
                        "twilio_src_address": module.SENDER, "twilio_base_url": self.twilio.base_url}
        settings.update(self.app_settings)
        settings.update(overrides)
        text = _section_text("fn_twilio_send_sms", settings)
        for label, values in self.labels.items():
            labelled = dict(settings)
            values = {**values, **((labels or {}).get(label) or {})}
            emulator = self.label_twilio.get(label)
            if emulator is not None:
                account_sid, auth_token, number = values["account"]
                labelled.update(twilio_account_sid=account_sid, twilio_auth_token=auth_token,
                                twilio_src_address=number, twilio_base_url=emulator.base_url)
            labelled.update({k: v for k, v in values.items() if k != "account"})
            text += "\n" + _section_text(f"fn_twilio_send_sms:{label}", labelled)
        return text

    def twilio_for(self, label=None):
        """The Twilio emulator behind ``label`` (the sandbox's own for the unlabelled section and for
        labels without an account of their own)."""
        return self.label_twilio.get(label, self.twilio)

    def launcher(self, name="app", *, app_section=None, loglevel=None, extra_resilient=None, env=None,
                 api_key_secret=API_KEY_SECRET, cafile=None):
        """A ResilientCircuits context (own folder, HOME, lock, app.config) against this sandbox."""
        launcher = ResilientCircuits(
            os.path.join(self.workdir, name), rest_port=self.rest.port, stomp_port=self.broker.port,
            cafile=cafile or self.certs.cert,
            app_section=self.app_section() if app_section is None else app_section,
            loglevel=loglevel or self.loglevel, num_workers=self.num_workers, api_key_id=API_KEY_ID,
            api_key_secret=api_key_secret, org=self.org_name, extra_resilient=extra_resilient, env=env)
        self._launchers.append(launcher)
        return launcher

    @property
    def config_path(self):
        return self.app.config_path

    def run_app(self, timeout=60.0):
        """Start ``resilient-circuits run`` with the sandbox's app.config and wait until it subscribed."""
        self.app.start(timeout=timeout)
        return self.app

    def driver(self, new=False, **kwargs):
        """The sandbox's connected SoarDriver (closed with the sandbox).

        One driver per sandbox: every driver consumes from the same ``acks.<org>.fn_twilio`` queue, so a
        second one would receive (and drop) part of the first one's replies. ``new=True`` makes another
        anyway (e.g. to test that)."""
        if self._drivers and not new and not kwargs:
            return self._drivers[0]
        driver = SoarDriver(self.broker.port, self.rest, org_id=self.org_id, login=SOAR_LOGIN,
                            passcode=SOAR_PASSCODE, **kwargs).connect()
        self._drivers.append(driver)
        return driver

    @property
    def action_queue(self):
        return f"actions.{self.org_id}.fn_twilio"

    def describe(self):
        lines = [
            f"workdir      {self.workdir}",
            f"SOAR REST    {self.rest.url} (api key {API_KEY_ID} / {API_KEY_SECRET})",
            f"STOMP (TLS)  127.0.0.1:{self.broker.port} ({self.broker_kind} broker; app login {API_KEY_ID}, "
            f"SOAR login {SOAR_LOGIN} / {SOAR_PASSCODE})",
            f"certificate  {self.certs.cert}",
            f"app.config   {self.app.config_path}",
        ]
        if self.twilio is not None:
            lines.append(f"Twilio       {self.twilio.base_url}")
        for label, emulator in self.label_twilio.items():
            lines.append(f"Twilio ({label}) {emulator.base_url} (account {emulator.account_sid})")
        return "\n".join(lines)

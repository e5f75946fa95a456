"""Fixtures for the Twilio emulator tests: one emulator per module, reset before each test, and a
real twilio SDK Client pointed at it."""
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from twilio.http.http_client import TwilioHttpClient  # noqa: E402
from twilio.rest import Client  # noqa: E402

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, TwilioEmulator  # noqa: E402


class Clock:
    """A clock the test moves by hand (aware UTC, whole seconds)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def clock():
    """The emulator's clock for a module whose emulator runs on time the tests move."""
    return Clock()


class BaseUrlHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to `base_url` (scheme and host swapped last)."""

    def __init__(self, base_url, **kwargs):
        super().__init__(**kwargs)
        self._base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):
        u = urlsplit(url)
        url = urlunsplit((self._base.scheme, self._base.netloc, u.path, u.query, u.fragment))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def emu_server():
    with TwilioEmulator() as emu:
        yield emu


@pytest.fixture
def emu(emu_server):
    emu_server.reset()
    yield emu_server
    emu_server.reset()


def sdk_client(emulator, username=ACCOUNT_SID, password=AUTH_TOKEN, account_sid=None, timeout=5):
    """A real twilio SDK Client whose requests all go to ``emulator``."""
    http = BaseUrlHttpClient(emulator.base_url, timeout=timeout)
    return Client(username, password, account_sid=account_sid, http_client=http)


@pytest.fixture
def make_client(emu):
    def make(*args, **kwargs):
        return sdk_client(emu, *args, **kwargs)
    return make


@pytest.fixture
def client_for():
    """A factory of SDK clients for emulators other than the module's."""
    return sdk_client


@pytest.fixture
def client(make_client):
    return make_client()

"""Fixtures for the Twilio emulator tests: one emulator per module, reset before each test, and a
real twilio SDK Client pointed at it."""
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from twilio.http.http_client import TwilioHttpClient  # noqa: E402
from twilio.rest import Client  # noqa: E402

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, TwilioEmulator  # noqa: E402


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


@pytest.fixture
def make_client(emu):
    def make(username=ACCOUNT_SID, password=AUTH_TOKEN, account_sid=None, timeout=5):
        http = BaseUrlHttpClient(emu.base_url, timeout=timeout)
        return Client(username, password, account_sid=account_sid, http_client=http)
    return make


@pytest.fixture
def client(make_client):
    return make_client()

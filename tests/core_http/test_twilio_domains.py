"""Every Twilio domain the app uses (api.twilio.com, studio.twilio.com) goes through the one HTTP client
that build_client makes: the same session, timeout, proxies and retry rules, and twilio_base_url points
all of them at one place (contract §14). A transport double records what would go on the wire."""
from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import HTTPAdapter

from fn_twilio.lib.settings import load_settings
from fn_twilio.lib.twilio_client import build_client
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER

ANSWERS = {
    "/v2/Flows": {"flows": [], "meta": {"page": 0, "page_size": 50, "next_page_url": None, "key": "flows"}},
    "/Messages.json": {"messages": [], "next_page_uri": None, "page": 0, "page_size": 50},
}


class Recorder(HTTPAdapter):
    """An adapter that answers every request itself and keeps what it was given."""

    def __init__(self):
        super().__init__(max_retries=0)
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append((request.url, kwargs))
        path = requests.utils.urlparse(request.url).path
        body = next(answer for suffix, answer in ANSWERS.items() if path.endswith(suffix))
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url, request
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        return response


def client_for(**section):
    settings = load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                              "twilio_src_address": SENDER, "timeout": "7", **section},
                             proxies={"https": "http://proxy.example:3128",
                                      "http": "http://proxy.example:3128"})
    client = build_client(settings)
    recorder = Recorder()
    client.http_client.session.mount("https://", recorder)
    client.http_client.session.mount("http://", recorder)
    return client, recorder


@pytest.mark.parametrize("base_url,studio_root,api_root", [
    (None, "https://studio.twilio.com", "https://api.twilio.com"),
    ("http://127.0.0.1:8899", "http://127.0.0.1:8899", "http://127.0.0.1:8899"),
    ("https://twilio-emulator.internal:4443", "https://twilio-emulator.internal:4443",
     "https://twilio-emulator.internal:4443"),
])
def test_studio_and_api_requests_share_the_client_and_follow_twilio_base_url(base_url, studio_root, api_root):
    client, recorder = client_for(**({"twilio_base_url": base_url} if base_url else {}))
    client.studio.v2.flows.list(page_size=5)
    client.messages.list(from_=SENDER, page_size=5)
    (studio_url, studio_kwargs), (api_url, api_kwargs) = recorder.sent
    assert studio_url.startswith(studio_root + "/v2/Flows?")
    assert api_url.startswith(f"{api_root}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?")
    for kwargs in (studio_kwargs, api_kwargs):
        assert kwargs["timeout"] == 7.0
        assert kwargs["proxies"]["https"] == "http://proxy.example:3128"
    assert studio_kwargs["verify"] == api_kwargs["verify"]
    assert client.http_client.last_response is not None

"""One request to SOAR's REST API, bounded by the app's ``timeout`` setting, with no retry loop.

It goes through the component's ``rest_client()``: its session, headers, proxies, TLS settings and
authentication, by the client's own ``_execute_request`` (the one call every method of resilient's client
makes per attempt). The client's ``get``/``post`` are not used where a call must not wait: they retry a
failed request ``request_max_retries`` times with back-off (a 500 costs about 30 s) and answer a 401 with
``sys.exit(21)``, which in resilient-circuits' worker thread leaves the call without an answer. Used by the
termination check of waiting calls and to read the incident of a default text.
"""
import json

import requests

from fn_twilio.lib.durations import format_duration
from fn_twilio.lib.termination import CredentialsRefused, StatusUnreadable

_DETAIL_MAX = 200


def soar_answer(client, method, uri, timeout, payload=None):
    """One request to SOAR (``uri`` below ``/rest/orgs/{org}``): the answer's JSON, or
    StatusUnreadable / CredentialsRefused saying why there is none."""
    url = f"{client.base_url}/rest/orgs/{client.org_id}{uri}"
    operation = client.session.post if method == "POST" else client.session.get
    extra = {} if payload is None else {"data": json.dumps(payload)}
    try:
        response = client._execute_request(operation, url, proxies=client.proxies, cookies=client.cookies,
                                           headers=client.make_headers(), verify=client.verify,
                                           cert=client.cert, timeout=timeout, **extra)
    except requests.Timeout:
        raise StatusUnreadable(f"SOAR did not answer within {format_duration(timeout)}") from None
    except requests.RequestException as err:
        raise StatusUnreadable(f"SOAR could not be reached ({type(err).__name__})") from None
    if response.status_code == 401:
        raise CredentialsRefused(_http_problem(response))
    if not 200 <= response.status_code < 300:
        raise StatusUnreadable(_http_problem(response))
    try:
        return response.json()
    except ValueError:
        raise StatusUnreadable(f"SOAR's answer ({response.status_code}) is not JSON") from None


def _http_problem(response):
    """``403 Forbidden: <SOAR's message>``, short and on one line."""
    text = f"{response.status_code} {response.reason or ''}".strip()
    message = None
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except ValueError:
        pass
    return f"{text}: {one_line(message)}" if message and message.strip() else text


def one_line(text):
    """``text`` on one line, at most 200 characters."""
    line = " ".join(str(text).strip().splitlines()[0].split()) if str(text).strip() else ""
    return line if len(line) <= _DETAIL_MAX else line[:_DETAIL_MAX - 3] + "..."

"""Twilio's OpenAPI spec (twilio_api_v2010.json) as a checker for requests and responses.

The spec is not part of the repository: it is looked up in ``$TWILIO_OAI_SPEC`` when set, else in
``../shared/twilio-oai/twilio_api_v2010.json`` beside the repository root. ``load_spec()`` loads it
once (about 1 s) and returns None when it is absent; ``skip_reason()`` says why, for pytest.skip.

``validate_request_record(record)`` and ``validate_response(record, body=None, status=None)`` take a
``sandbox.twilio_emulator.RequestRecord`` (or its ``to_dict()`` form from the control API) and raise
an openapi-core validation error when the request or the success response does not conform. The
spec declares success responses only, so validate only 2xx responses. Requests are checked as if
sent to https://api.twilio.com, the server the spec declares for each path.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

SPEC_ENV = "TWILIO_OAI_SPEC"
DEFAULT_SPEC_PATH = (Path(__file__).resolve().parents[1] / ".." / "shared" / "twilio-oai"
                     / "twilio_api_v2010.json")
TWILIO_HOST = "https://api.twilio.com"

_lock = threading.Lock()
_cache: dict = {}


class SpecUnavailable(RuntimeError):
    """The spec file is missing or openapi-core cannot be imported."""


def spec_path() -> Path:
    """Where the spec is expected: $TWILIO_OAI_SPEC, else ../shared/twilio-oai/ beside the repository."""
    env = os.environ.get(SPEC_ENV)
    return Path(env) if env else DEFAULT_SPEC_PATH.resolve()


def skip_reason() -> str | None:
    """None when the spec can be loaded, else a message naming the expected location."""
    path = spec_path()
    if not path.is_file():
        return (f"Twilio OpenAPI spec not found at {path} (expected "
                f"../shared/twilio-oai/twilio_api_v2010.json beside the repository root, or set ${SPEC_ENV})")
    try:
        import openapi_core  # noqa: F401
    except ImportError:
        return "openapi-core is not installed (pip install openapi-core==0.23.1)"
    return None


def load_spec():
    """The parsed spec as an openapi_core.OpenAPI, loaded once; None when unavailable."""
    path = spec_path()
    with _lock:
        if path in _cache:
            return _cache[path]
        if skip_reason() is not None:
            return None
        from openapi_core import OpenAPI
        with open(path, encoding="utf-8") as f:
            spec = OpenAPI.from_dict(json.load(f))
        _cache[path] = spec
        return spec


def require_spec():
    spec = load_spec()
    if spec is None:
        raise SpecUnavailable(skip_reason())
    return spec


def _get(record: Any, name: str, default=None):
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


def _bytes(value) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _query(record) -> dict:
    query = _get(record, "query") or {}
    return {k: (v if isinstance(v, list) else [v]) for k, v in query.items()}


def _request(record):
    from openapi_core.testing import MockRequest
    method = _get(record, "method").lower()
    headers = dict(_get(record, "headers") or {})
    ctype = _get(record, "content_type") or headers.get("Content-Type") or "application/x-www-form-urlencoded"
    data = _bytes(_get(record, "body"))
    if method in ("get", "delete", "head") and not data:
        ctype = "application/x-www-form-urlencoded"
    return MockRequest(TWILIO_HOST, method, _get(record, "path"), args=_query(record), headers=headers,
                       data=data, content_type=ctype.split(";")[0].strip())


def validate_request_record(record) -> None:
    """Raise an openapi-core error when the request does not conform to the spec."""
    require_spec().validate_request(_request(record))


def validate_response(record, body: bytes | None = None, status: int | None = None,
                      content_type: str = "application/json") -> None:
    """Raise an openapi-core error when the (success) response to `record` does not conform.
    `body` and `status` default to what the emulator recorded."""
    from openapi_core.testing import MockResponse
    if body is None:
        body = _get(record, "response_body")
    if status is None:
        status = _get(record, "status")
    if status is None:
        raise ValueError("the request got no response (dropped connection): nothing to validate")
    response = MockResponse(_bytes(body), status_code=int(status), content_type=content_type.split(";")[0])
    require_spec().validate_response(_request(record), response)

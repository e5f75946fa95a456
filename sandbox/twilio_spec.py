"""Twilio's OpenAPI specs as checkers for requests and responses: ``twilio_api_v2010.json`` (the
2010-04-01 API: Messages, Calls, ...; spec ``"api"``) and ``twilio_studio_v2.json`` (Studio v2: Flows,
Executions; spec ``"studio"``).

The specs are not part of the repository: each is looked up in ``../shared/twilio-oai/`` beside the
repository root (``$TWILIO_OAI_SPEC`` names another file for the api spec, ``$TWILIO_OAI_STUDIO_SPEC``
for the Studio one). ``load_spec(which)`` loads one once (about 1 s) and returns None when it is
absent; ``skip_reason(which)`` says why, for pytest.skip.

``validate_request_record(record)`` and ``validate_response(record, body=None, status=None)`` take a
``sandbox.twilio_emulator.RequestRecord`` (or its ``to_dict()`` form from the control API) and raise
an openapi-core validation error when the request or the success response does not conform. The
spec is chosen by the request's path (``/v2/Flows...``: Studio, else the api spec). The specs
declare success responses only, so validate only 2xx responses. Requests are checked as if sent to
the server each spec declares for its paths (https://api.twilio.com, https://studio.twilio.com).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

SPEC_ENV = "TWILIO_OAI_SPEC"
STUDIO_SPEC_ENV = "TWILIO_OAI_STUDIO_SPEC"
SPEC_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "twilio-oai"
DEFAULT_SPEC_PATH = SPEC_DIR / "twilio_api_v2010.json"
TWILIO_HOST = "https://api.twilio.com"
STUDIO_HOST = "https://studio.twilio.com"
#: which spec: (file name, environment variable naming another file, the host its paths are served on)
SPECS = {
    "api": ("twilio_api_v2010.json", SPEC_ENV, TWILIO_HOST),
    "studio": ("twilio_studio_v2.json", STUDIO_SPEC_ENV, STUDIO_HOST),
}

_lock = threading.Lock()
_cache: dict = {}


class SpecUnavailable(RuntimeError):
    """The spec file is missing or openapi-core cannot be imported."""


def _which(which: str) -> tuple[str, str, str]:
    if which not in SPECS:
        raise ValueError(f"unknown spec {which!r}; expected one of {', '.join(SPECS)}")
    return SPECS[which]


def spec_path(which: str = "api") -> Path:
    """Where a spec is expected: its environment variable, else ../shared/twilio-oai/ beside the
    repository."""
    name, env_name, _ = _which(which)
    env = os.environ.get(env_name)
    return Path(env) if env else (SPEC_DIR / name).resolve()


def skip_reason(which: str = "api") -> str | None:
    """None when the spec can be loaded, else a message naming the expected location."""
    name, env_name, _ = _which(which)
    path = spec_path(which)
    if not path.is_file():
        return (f"Twilio OpenAPI spec not found at {path} (expected "
                f"../shared/twilio-oai/{name} beside the repository root, or set ${env_name})")
    try:
        import openapi_core  # noqa: F401
    except ImportError:
        return "openapi-core is not installed (pip install openapi-core==0.23.1)"
    return None


def load_spec(which: str = "api"):
    """The parsed spec as an openapi_core.OpenAPI, loaded once; None when unavailable."""
    path = spec_path(which)
    with _lock:
        if path in _cache:
            return _cache[path]
        if skip_reason(which) is not None:
            return None
        from openapi_core import OpenAPI
        with open(path, encoding="utf-8") as f:
            spec = OpenAPI.from_dict(json.load(f))
        _cache[path] = spec
        return spec


def require_spec(which: str = "api"):
    spec = load_spec(which)
    if spec is None:
        raise SpecUnavailable(skip_reason(which))
    return spec


def spec_for_path(path: str) -> str:
    """Which spec describes a request path: ``studio`` for ``/v2/Flows...``, else ``api``."""
    return "studio" if path.startswith("/v2/Flows") else "api"


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
    host = _which(spec_for_path(_get(record, "path")))[2]
    return MockRequest(host, method, _get(record, "path"), args=_query(record), headers=headers,
                       data=data, content_type=ctype.split(";")[0].strip())


def validate_request_record(record) -> None:
    """Raise an openapi-core error when the request does not conform to its spec."""
    require_spec(spec_for_path(_get(record, "path"))).validate_request(_request(record))


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
    require_spec(spec_for_path(_get(record, "path"))).validate_response(_request(record), response)

"""The one place a twilio ``Client`` is built.

Every client gets: the credentials (auth token or API key), an HTTP ``timeout`` (the SDK has none by
default), the proxies and TLS verification the administrator configured, the ``twilio_base_url``
(so a local Twilio emulator can stand in for Twilio), a user-agent extension naming this app, and no
hidden retries: the sender and the pollers decide what may be repeated (see ``errors``). Every Twilio
domain the app uses (api.twilio.com, studio.twilio.com, messaging.twilio.com) goes through that one
HTTP client; a ``twilio_base_url`` other than the default sends all of them to it (their paths,
``/2010-04-01/...``, ``/v2/Flows/...``, ``/v1/Services/...``, do not clash).

The SDK logs each request (URL with query string, i.e. phone numbers) at INFO; here those lines go
to DEBUG so that resilient-circuits' usual INFO log carries no phone numbers.

A client is not safe to share between threads: build one per thread (``ThreadLocalClients``).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from fn_twilio import __version__

TWILIO_API_URL = "https://api.twilio.com"
USER_AGENT_EXTENSION = f"fn_twilio/{__version__}"

LOG = logging.getLogger(__name__)


class _DebugOnly:
    """A logger stand-in that hands the SDK's INFO lines to DEBUG."""

    def __init__(self, logger: logging.Logger):
        self._logger = logger

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._logger.debug(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


_SDK_LOG = _DebugOnly(logging.getLogger("fn_twilio.twilio_http"))


class AppHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """TwilioHttpClient that sends to ``base_url`` and keeps the last raw response.

    The SDK builds absolute ``https://<domain>.twilio.com/...`` URLs (next-page links too, Studio's
    absolute ``next_page_url`` included); the scheme and host are swapped as the last step, so paging
    and every resource of every domain work against an emulator.
    """

    def __init__(self, base_url: str = TWILIO_API_URL, *, timeout: float | None = None,
                 proxy: dict[str, str] | None = None, verify: Any = True, pool_size: int = 10) -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=_SDK_LOG, proxy=proxy)
        self._base = urlsplit(base_url.rstrip("/"))
        self._rewrite = base_url.rstrip("/") != TWILIO_API_URL
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if verify is not None:
            self.session.verify = verify
        self.last_response = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self._rewrite:
            parts = urlsplit(url)
            url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, parts.fragment))
        self.last_response = None
        response = super().request(method, url, *args, **kwargs)
        self.last_response = response
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def build_client(settings: Any, *, pool_size: int = 10) -> Client:
    """A new twilio Client for ``settings`` (a :class:`fn_twilio.lib.settings.Settings`)."""
    http_client = AppHttpClient(settings.base_url, timeout=settings.timeout, proxy=settings.proxies,
                                verify=settings.verify, pool_size=pool_size)
    if settings.api_key_sid and settings.api_key_secret:
        username, password = settings.api_key_sid, settings.api_key_secret
    else:
        username, password = settings.account_sid, settings.auth_token
    return Client(username, password, account_sid=settings.account_sid, http_client=http_client,
                  user_agent_extensions=[USER_AGENT_EXTENSION])


class ThreadLocalClients:
    """One twilio Client per thread for the same settings, closed together (``factory``, when given,
    builds them instead of :func:`build_client`: tests' fake clients)."""

    def __init__(self, settings: Any, factory: Callable[[Any], Any] | None = None) -> None:
        self._settings = settings
        self._factory = factory
        self._local = threading.local()
        self._all: list[Client] = []
        self._lock = threading.Lock()

    def get(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            factory = self._factory
            client = factory(self._settings) if factory else build_client(self._settings, pool_size=2)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            close_client(client)


def close_client(client: Any) -> None:
    """Close ``client``'s HTTP session (None: nothing to close); best effort, a failure is logged at
    DEBUG."""
    if client is None:
        return
    try:
        client.http_client.close()
    except Exception:  # closing is best effort
        LOG.debug("closing a Twilio HTTP session failed", exc_info=True)


@contextmanager
def client_session(settings: Any, client: Any = None,
                   factory: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """``client`` when one is given (its owner closes it); otherwise a client made for ``settings`` by
    ``factory`` (by default :func:`build_client` with a pool of one), closed on leaving the block."""
    if client is not None:
        yield client
        return
    made = factory(settings) if factory is not None else build_client(settings, pool_size=1)
    try:
        yield made
    finally:
        close_client(made)

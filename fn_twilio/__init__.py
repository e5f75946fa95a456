"""fn_twilio: send SMS through Twilio from IBM SOAR and collect the replies."""
try:
    from importlib.metadata import version as _version

    __version__ = _version("fn_twilio")
except Exception:  # not installed (running from a source tree)
    __version__ = "2.3.0"

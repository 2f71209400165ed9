"""Gunicorn's access log without secrets in URLs.

Meta's OAuth redirect carries a one-time ``code`` and our signed ``state`` in its query string,
and the webhook handshake carries ``hub.verify_token``: a plain access log would keep them (and
browsers repeat the callback URL as the next request's Referer). The web process logs requests
through ``RedactingLogger`` (Procfile: ``--logger-class config.access_log.RedactingLogger``),
which masks those values in the request line, the query and the Referer.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gunicorn.glogging import Logger

# Query parameters whose values never reach a log.
SECRET_PARAMS = frozenset(
    {
        "code",
        "state",
        "access_token",
        "hub.verify_token",
        "signed_request",
        "client_secret",
        "token",
        "key",
    }
)
MASK = "***"


def redact_query(query: str) -> str:
    """``code=abc&x=1`` -> ``code=***&x=1``; anything unparsable is dropped, not leaked."""
    if not query:
        return query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return MASK
    masked = [(name, MASK if name.lower() in SECRET_PARAMS else value) for name, value in pairs]
    return urlencode(masked, safe="*")


def redact_uri(uri: str) -> str:
    """A path or full URL with its query redacted (the fragment too: it may hold a code)."""
    if not uri or ("?" not in uri and "#" not in uri):
        return uri
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, redact_query(parts.query), ""))


class RedactingLogger(Logger):
    """Gunicorn's logger, with secret query values masked in every access-log atom."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        method = environ.get("REQUEST_METHOD", "-")
        protocol = environ.get("SERVER_PROTOCOL", "-")
        atoms["r"] = f"{method} {redact_uri(environ.get('RAW_URI', ''))} {protocol}"
        atoms["q"] = redact_query(environ.get("QUERY_STRING") or "")
        atoms["f"] = redact_uri(environ.get("HTTP_REFERER", "-"))
        for key in ("{referer}i", "{raw_uri}e", "{http_referer}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_uri(atoms[key])
        if isinstance(atoms.get("{query_string}e"), str):
            atoms["{query_string}e"] = redact_query(atoms["{query_string}e"])
        return atoms

"""The Graph client reads the environment's proxy settings once per origin, as requests would
(HTTPS_PROXY, NO_PROXY), and never lets ~/.netrc replace its Authorization header."""

import pytest
import responses

from meta import client as graph_client
from meta.client import GraphClient, proxies_for


@pytest.fixture(autouse=True)
def _fresh_origins(monkeypatch):
    monkeypatch.setattr(graph_client, "_proxies_by_origin", {})


def test_the_environment_names_the_proxy_and_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "graph.internal")
    assert proxies_for("https://graph.facebook.com/v24.0")["https"] == "http://proxy.example:3128"
    assert proxies_for("https://graph.internal/v24.0") == {}


def test_a_call_goes_through_the_proxy_requests_would_use(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    seen = {}

    def send(self, request, **kwargs):
        seen.update(kwargs)
        raise graph_client.requests.exceptions.ConnectTimeout("no proxy here")

    monkeypatch.setattr(graph_client.HTTPAdapter, "send", send)
    result = GraphClient("https://graph.facebook.com/v24.0", "t", session=None).post("/me/x")
    assert seen["proxies"]["https"] == "http://proxy.example:3128"
    assert "nothing was sent" in result.message


@responses.activate
def test_netrc_credentials_never_replace_the_bearer_token(monkeypatch, tmp_path):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine graph.facebook.com login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    responses.post("https://graph.facebook.com/v24.0/me/x", json={"id": "1"})
    GraphClient("https://graph.facebook.com/v24.0", "the-token").post("/me/x")
    assert responses.calls[0].request.headers["Authorization"] == "Bearer the-token"

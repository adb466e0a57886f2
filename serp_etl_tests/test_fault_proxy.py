"""The fault-injecting proxy does what it says: each fault is what a client really meets."""

from __future__ import annotations

import httpx
import pytest

from serp_etl_tests.fault_proxy import FaultProxy


def echo(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"hello" * 100
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Up", "1")])
    return [body]


@pytest.fixture
def proxy():
    with FaultProxy(echo) as proxy:
        yield proxy


def test_a_clean_request_is_forwarded_and_counted(proxy):
    answer = httpx.post(f"{proxy.url}/v1/x?a=1", content=b"payload")
    assert answer.status_code == 200 and answer.content == b"payload"
    assert answer.headers["x-up"] == "1"
    assert proxy.forwarded[("POST", "/v1/x")] == 1 and not proxy.met


@pytest.mark.parametrize(
    ("kind", "error", "forwarded"),
    [
        ("reset_before", httpx.RemoteProtocolError, 0),
        ("reset_after", httpx.RemoteProtocolError, 1),
        ("truncate_after", httpx.RemoteProtocolError, 1),
        ("stall_before", httpx.ReadTimeout, 0),
        ("stall_after", httpx.ReadTimeout, 1),
    ],
)
def test_broken_answers(proxy, kind, error, forwarded):
    proxy.add(kind, path="/x")
    with pytest.raises((error, httpx.ReadError)):
        httpx.get(f"{proxy.url}/x", timeout=httpx.Timeout(5, read=0.3))
    assert proxy.forwarded[("GET", "/x")] == forwarded and proxy.met[kind] == 1
    assert httpx.get(f"{proxy.url}/x").status_code == 200  # times=1: the next one is clean


def test_statuses_before_and_after_forwarding(proxy):
    proxy.add("status_before", path="/a", status=429, headers={"Retry-After": "7"})
    proxy.add("status_after", path="/b", status=503, times=2)
    limited = httpx.get(f"{proxy.url}/a")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert [httpx.get(f"{proxy.url}/b").status_code for _ in range(3)] == [503, 503, 200]
    assert proxy.forwarded[("GET", "/a")] == 0 and proxy.forwarded[("GET", "/b")] == 3


def test_rules_match_method_path_and_query(proxy):
    proxy.add("status_before", method="GET", path="/serp/google", query="ids=", times=None)
    assert httpx.get(f"{proxy.url}/v1/serp/google").status_code == 200
    assert httpx.post(f"{proxy.url}/v1/serp/google?ids=1").status_code == 200
    assert httpx.get(f"{proxy.url}/v1/serp/google?ids=1").status_code == 502
    assert httpx.get(f"{proxy.url}/v1/serp/google?ids=2").status_code == 502

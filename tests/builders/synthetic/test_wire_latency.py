"""The local servers must not add latency of their own to a kept-alive connection."""

from __future__ import annotations

import http.client
import json
import statistics
import time

from hexainst.builders.synthetic.stub_server import StubServer


def test_stub_answers_on_a_kept_alive_connection_without_nagle_delay():
    # With Nagle's algorithm on, the body (a second write after the headers) waits for the
    # client's delayed ACK: about 40 ms per answer on Linux, which cost the generation benchmark
    # a quarter of its wall time. With TCP_NODELAY a local answer takes about a millisecond.
    body = json.dumps({"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]})
    with StubServer(latency=0.0, mode="echo") as stub:
        conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            times.append(time.perf_counter() - t0)
            assert resp.status == 200 and answer["choices"][0]["message"]["content"]
        conn.close()
    assert len(stub.requests) == 30  # one connection, thirty answered requests
    assert statistics.median(times) < 0.02, f"median {statistics.median(times) * 1000:.1f} ms per request"

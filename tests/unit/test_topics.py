"""Topic names, broker addresses and presence payloads: pure functions, no broker."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeswarm.presence.topics import (
    decode_event,
    decode_status,
    decode_telemetry,
    encode_event,
    encode_status,
    encode_telemetry,
    events_topic,
    parse_broker,
    status_filter,
    status_topic,
    telemetry_filter,
    telemetry_topic,
    worker_of,
)

SAMPLE = {"in_flight": 2, "requests_per_s": 12.5, "stage_ms": 3.25, "memory_available": 8 << 30}


def test_topic_names() -> None:
    assert status_topic("lab", "w1") == "edgeswarm/lab/workers/w1/status"
    assert telemetry_topic("lab", "w1") == "edgeswarm/lab/workers/w1/telemetry"
    assert events_topic("lab") == "edgeswarm/lab/events"
    assert status_filter("lab") == "edgeswarm/lab/workers/+/status"
    assert telemetry_filter("lab") == "edgeswarm/lab/workers/+/telemetry"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x\0"])
def test_names_that_would_break_a_topic_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="MQTT topic"):
        status_topic(bad, "w1")
    with pytest.raises(ValueError, match="MQTT topic"):
        telemetry_topic("lab", bad)
    with pytest.raises(ValueError, match="MQTT topic"):
        events_topic(bad)


def test_worker_of() -> None:
    assert worker_of(status_topic("lab", "w1")) == "w1"
    assert worker_of(telemetry_topic("lab", "3f2a")) == "3f2a"
    for other in [
        events_topic("lab"),
        "edgeswarm/lab/workers/w1",
        "edgeswarm/lab/workers//status",
        "edgeswarm/lab/workers/w1/status/extra",
        "edgeswarm/lab/other/w1/status",
        "elsewhere/lab/workers/w1/status",
        "edgeswarm/lab/workers/w1/logs",
        "",
    ]:
        assert worker_of(other) is None, other


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("broker.lan:1884", ("broker.lan", 1884)),
        ("10.0.0.5", ("10.0.0.5", 1883)),
        (" 127.0.0.1:1883 ", ("127.0.0.1", 1883)),
        ("[::1]:8883", ("::1", 8883)),
        ("[fe80::1]", ("fe80::1", 1883)),
    ],
)
def test_parse_broker(address: str, expected: tuple[str, int]) -> None:
    assert parse_broker(address) == expected


@pytest.mark.parametrize(
    "address", ["", ":1883", "host:", "host:port", "host:0", "host:65536", "host:-1", "::1", "[::1", "[::1]x"]
)
def test_parse_broker_refuses_with_the_address_in_the_message(address: str) -> None:
    with pytest.raises(ValueError, match="broker"):
        parse_broker(address)


def test_status_round_trip() -> None:
    online = decode_status(encode_status("online", "w1", "desk", "10.0.0.2:50051", now=100.0))
    assert online == {"state": "online", "id": "w1", "name": "desk", "address": "10.0.0.2:50051", "time": 100}
    offline = decode_status(encode_status("offline", "w1", "desk", "10.0.0.2:50051", reason="lost"))
    assert offline is not None and offline["state"] == "offline" and offline["reason"] == "lost"
    assert isinstance(offline["time"], float)


def test_status_state_is_checked_both_ways() -> None:
    with pytest.raises(ValueError, match="state"):
        encode_status("asleep", "w1", "desk", "x:1")  # type: ignore[arg-type]
    assert decode_status(b'{"state": "asleep", "id": "w1"}') is None
    assert decode_status(b'{"state": "online"}') is None
    assert decode_status(b'{"state": "online", "id": 7}') is None


def test_telemetry_round_trip_keeps_extra_fields() -> None:
    got = decode_telemetry(encode_telemetry({**SAMPLE, "model": "enc"}, now=5.0))
    assert got == {**SAMPLE, "model": "enc", "time": 5.0}


def test_telemetry_needs_every_field() -> None:
    with pytest.raises(ValueError, match="memory_available, stage_ms"):
        encode_telemetry({"in_flight": 0, "requests_per_s": 0})
    assert decode_telemetry(json.dumps({**SAMPLE, "stage_ms": "3"})) is None
    assert decode_telemetry(json.dumps({**SAMPLE, "in_flight": True})) is None
    assert decode_telemetry(json.dumps({k: v for k, v in SAMPLE.items() if k != "in_flight"})) is None


def test_event_round_trip() -> None:
    got = decode_event(encode_event("plan_changed", {"model": "enc", "version": 4}, now=1.5))
    assert got == {"event": "plan_changed", "model": "enc", "version": 4, "time": 1.5}
    with pytest.raises(ValueError, match="kind"):
        encode_event("", {})
    with pytest.raises(ValueError, match="time"):
        encode_event("joined", {"time": 1})
    assert decode_event(b'{"event": ""}') is None
    assert decode_event(b'{"worker": "w1"}') is None


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\xff\xfe\x00", b"not json", b"[1, 2]", b'"online"', b"null", b"{", b"[" * 100_000, "1" * 5000],
)
def test_decoders_return_none_for_garbage(garbage: bytes | str) -> None:
    assert decode_status(garbage) is None
    assert decode_telemetry(garbage) is None
    assert decode_event(garbage) is None


@given(st.binary() | st.text())
def test_decoders_never_raise(payload: bytes | str) -> None:
    for decode in (decode_status, decode_telemetry, decode_event):
        result = decode(payload)
        assert result is None or isinstance(result, dict)

"""MQTT topic names and JSON payloads of fleet presence and telemetry. Pure: no broker, no client.

    edgeswarm/<fleet>/workers/<id>/status     retained, QoS 1: online, or offline with a reason
    edgeswarm/<fleet>/workers/<id>/telemetry  QoS 0, every few seconds: load of one worker
    edgeswarm/<fleet>/events                  QoS 1: joined, left, plan_changed from the coordinator

Every payload is a JSON object with a `time` (seconds since the epoch). The decoders take whatever
arrived on the wire and return None for anything malformed; they never raise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

ROOT = "edgeswarm"
DEFAULT_PORT = 1883

State = Literal["online", "offline"]
STATES: frozenset[str] = frozenset({"online", "offline"})
TELEMETRY_FIELDS: frozenset[str] = frozenset({"in_flight", "requests_per_s", "stage_ms", "memory_available"})
STATUS = "status"
TELEMETRY = "telemetry"

Payload = dict[str, Any]


def _segment(value: str, what: str) -> str:
    """One level of a topic name: not empty, and no separator or wildcard inside."""
    if not value or any(c in value for c in "/+#\0"):
        raise ValueError(
            f"{what} {value!r} cannot be part of an MQTT topic: it must be non-empty without / + #"
        )
    return value


def _worker_topic(fleet: str, worker_id: str, kind: str) -> str:
    return f"{ROOT}/{_segment(fleet, 'fleet')}/workers/{_segment(worker_id, 'worker id')}/{kind}"


def status_topic(fleet: str, worker_id: str) -> str:
    return _worker_topic(fleet, worker_id, STATUS)


def telemetry_topic(fleet: str, worker_id: str) -> str:
    return _worker_topic(fleet, worker_id, TELEMETRY)


def events_topic(fleet: str) -> str:
    return f"{ROOT}/{_segment(fleet, 'fleet')}/events"


def status_filter(fleet: str) -> str:
    return f"{ROOT}/{_segment(fleet, 'fleet')}/workers/+/{STATUS}"


def telemetry_filter(fleet: str) -> str:
    return f"{ROOT}/{_segment(fleet, 'fleet')}/workers/+/{TELEMETRY}"


def worker_of(topic: str) -> str | None:
    """The worker id in a status or telemetry topic; None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[2] != "workers" or parts[4] not in (STATUS, TELEMETRY):
        return None
    return parts[3] or None


def parse_broker(address: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT` as (host, port); the port is 1883 when left out."""
    text = address.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"broker {address!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ValueError(f"broker {address!r}: write an IPv6 address in brackets, as [::1]:1883")
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise ValueError(f"broker {address!r}: no host; expected HOST or HOST:PORT")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"broker {address!r}: port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _encode(payload: Mapping[str, object], now: float | None) -> bytes:
    stamped = {**payload, "time": round(time.time() if now is None else now, 3)}
    return json.dumps(stamped, separators=(",", ":")).encode()


def _decode(payload: bytes | str) -> Payload | None:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):  # bad UTF-8 and bad JSON are both ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def encode_status(
    state: State,
    worker_id: str,
    name: str,
    address: str,
    reason: str | None = None,
    now: float | None = None,
) -> bytes:
    if state not in STATES:
        raise ValueError(f"status state {state!r} is not one of {sorted(STATES)}")
    payload: Payload = {"state": state, "id": worker_id, "name": name, "address": address}
    if reason is not None:
        payload["reason"] = reason
    return _encode(payload, now)


def decode_status(payload: bytes | str) -> Payload | None:
    """A status with a known state and a worker id, or None."""
    status = _decode(payload)
    if status is None or status.get("state") not in STATES or not isinstance(status.get("id"), str):
        return None
    return status


def encode_telemetry(sample: Mapping[str, object], now: float | None = None) -> bytes:
    """`sample` holds in_flight, requests_per_s, stage_ms (mean over the last interval), memory_available."""
    missing = TELEMETRY_FIELDS - sample.keys()
    if missing:
        raise ValueError(f"telemetry sample lacks {', '.join(sorted(missing))}")
    return _encode(sample, now)


def decode_telemetry(payload: bytes | str) -> Payload | None:
    """A telemetry sample whose fields are all numbers, or None."""
    sample = _decode(payload)
    if sample is None or not all(_is_number(sample.get(field)) for field in TELEMETRY_FIELDS):
        return None
    return sample


def encode_event(kind: str, fields: Mapping[str, object], now: float | None = None) -> bytes:
    if not kind:
        raise ValueError("an event needs a kind, such as joined, left or plan_changed")
    clash = {"event", "time"} & fields.keys()
    if clash:
        raise ValueError(f"event fields may not be named {', '.join(sorted(clash))}")
    return _encode({"event": kind, **fields}, now)


def decode_event(payload: bytes | str) -> Payload | None:
    event = _decode(payload)
    if event is None or not isinstance(event.get("event"), str) or not event["event"]:
        return None
    return event

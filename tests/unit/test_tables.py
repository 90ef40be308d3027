"""`edgeswarm status` and `edgeswarm inspect` as text: nothing cut at 80 columns, every column when
wide; and `--json` keeps the proto's field names."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

import pytest
from google.protobuf.descriptor import Descriptor
from rich.console import Console

from edgeswarm._proto.edgeswarm.v1 import control_pb2
from edgeswarm.cli.tables import print_inspection, print_status, print_store, status_tables
from edgeswarm.client import (
    LinkStatus,
    ModelStatus,
    StageInfo,
    StatusReport,
    StoredModel,
    StoreStatus,
    WorkerStatus,
)

IDS = [
    "0d13a6f2c4e94b7f8a51c2e0b7d9f3a1",
    "5be0c7d1a2f34e6b9c8d7e6f5a4b3c2d",
    "e91f0a2b3c4d5e6f7a8b9c0d1e2f3a4b",
]
NAMES = ["desk-pc-01", "laptop-kitchen", "workshop"]


def worker(i: int, stages: tuple[str, ...], state: str = "up") -> WorkerStatus:
    return WorkerStatus(
        id=IDS[i], name=NAMES[i], address=f"192.168.1.{21 + i}:50061", state=state, cores=8,
        memory_available=11_800_000_000, loaded_stages=stages, in_flight=i, calibration_gflops=38.4 + i,
        rtt_ms=0.42, bandwidth_mbps=112.5, memory_limit=16 * 2**30,
    )  # fmt: skip


def stage(index: int, workers: list[str], recent_ms: list[float], group: int = 0) -> StageInfo:
    return StageInfo(
        index=index, sha256=f"{index:x}" * 64, size=14_200_000, workers=tuple(workers), group=group,
        inputs=("input_ids", "attention_mask") if index == 0 else ("hidden_states", "attention_mask"),
        outputs=("hidden_states",), recent_ms=tuple(recent_ms),
    )  # fmt: skip


REPORT = StatusReport(
    fleet="lab",
    version="0.4.0",
    workers=(
        worker(0, ("encoder/1", "encoder-pipeline/1")),
        worker(1, ("encoder/1", "encoder-pipeline/2")),
        worker(2, ("encoder/1", "encoder-pipeline/3"), state="banned"),
    ),
    models=(
        ModelStatus(
            name="encoder",
            version="1",
            mode="replicas",
            ready=True,
            stages=(stage(0, IDS, [12.5, 14.1, 0.0]),),
            objective="",
            predicted_rps=0.0,
            predicted_latency_ms=0.0,
        ),
        ModelStatus(
            name="encoder-pipeline",
            version="3",
            mode="auto",
            ready=True,
            stages=tuple(stage(i, [IDS[i]], [5.2 + i]) for i in range(3)),
            objective="throughput",
            predicted_rps=61.8,
            predicted_latency_ms=17.3,
        ),
    ),
    links=(
        LinkStatus(from_id=IDS[0], to_id=IDS[1], rtt_ms=0.38, bandwidth_mbps=110.2, reachable=True),
        LinkStatus(from_id=IDS[1], to_id=IDS[2], rtt_ms=0.0, bandwidth_mbps=0.0, reachable=False),
    ),
)


def rendered(width: int, wide: bool = False, report: StatusReport = REPORT) -> str:
    console = Console(width=width, record=True)
    print_status(report, console, wide=wide)
    return console.export_text()


def sections(text: str) -> dict[str, str]:
    """The rendered status by table: workers, models, links (each from its title on)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in ("models", "links between workers")]
    bounds = [0, *starts, len(lines)]
    parts = ["\n".join(lines[a:b]) for a, b in itertools.pairwise(bounds)]
    return dict(zip(("workers", "models", "links"), parts, strict=True))


def test_status_at_80_columns_cuts_nothing() -> None:
    text = rendered(80)
    print(text)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    shown = sections(text)
    for w in REPORT.workers:
        assert w.id[:8] in shown["workers"] and w.name in shown["workers"]
    for model in REPORT.models:
        assert model.name in shown["models"]
    assert "3 workers" in shown["models"] and "1 worker " in shown["models"]
    assert "encoder-pipeline: predicted 61.8 req/s, 17.3 ms (throughput)" in shown["models"]
    assert "desk-pc-01 - laptop-kitchen" in shown["links"] and "unreachable" in shown["links"]


def test_status_at_80_columns_leaves_out_names_in_the_models_table_and_low_value_columns() -> None:
    shown = sections(rendered(80))
    assert not any(name in shown["models"] for name in NAMES)
    for column in ("address", "cores", "mem free", "rtt ms", "inputs"):
        assert column not in shown["workers"] + shown["models"]


@pytest.mark.parametrize("how", ["asked", "room"])
def test_status_wide_has_every_column_and_worker_names_in_the_models_table(how: str) -> None:
    text = rendered(200, wide=True) if how == "asked" else rendered(200)
    print(text)
    assert "…" not in text
    shown = sections(text)
    for column in ("address", "cores", "mem free", "rtt ms", "MB/s", "stages"):
        assert column in shown["workers"]
    for column in ("inputs", "outputs", "ready", "predicted", "61.8 req/s"):
        assert column in shown["models"]
    for name, ms in zip(NAMES, ["12.5 ms", "14.1 ms", ""], strict=True):
        assert f"{name} ({ms})" in shown["models"] if ms else name in shown["models"]
    assert "encoder-pipeline/1" in shown["workers"]


def test_wide_when_asked_even_at_80_columns() -> None:
    header = rendered(80, wide=True).splitlines()[1]
    assert header.count("┳") == len(status_tables(REPORT, wide=True)[0].columns) - 1


def test_a_route_column_only_when_some_model_has_several_routes() -> None:
    assert "route" not in sections(rendered(80))["models"]
    hybrid = dataclasses.replace(
        REPORT.models[1],
        stages=(stage(0, [IDS[0]], [1.0]), stage(1, [IDS[1]], [1.0]), stage(0, [IDS[2]], [1.0], group=1)),
    )
    text = sections(rendered(80, report=dataclasses.replace(REPORT, models=(hybrid,))))["models"]
    print(text)
    assert "route" in text and "2/2" in text and "…" not in text


def fields_of(descriptor: Descriptor) -> list[str]:
    return [f.name for f in descriptor.fields]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (StatusReport, control_pb2.StatusResponse),
        (WorkerStatus, control_pb2.WorkerStatus),
        (ModelStatus, control_pb2.ModelStatus),
        (StageInfo, control_pb2.StageStatus),
        (LinkStatus, control_pb2.LinkStatus),
    ],
)
def test_status_json_keys_are_the_proto_field_names_in_order(result: type, message: type) -> None:
    assert [f.name for f in dataclasses.fields(result)] == fields_of(message.DESCRIPTOR)  # type: ignore[attr-defined]


def test_from_proto_gives_python_types() -> None:
    response = control_pb2.StatusResponse(fleet="lab", version="0.4.0")
    response.workers.add(id=IDS[0], name="a", state="up", cores=8, memory_limit=2**34, loaded_stages=["m/1"])
    model = response.models.add(name="m", version="1", mode="pipeline", ready=True)
    model.stages.add(index=0, size=2**33, workers=[IDS[0]], recent_ms=[1.5])
    response.links.add(from_id=IDS[0], to_id=IDS[1], rtt_ms=0.5, bandwidth_mbps=100.0, reachable=True)
    report = StatusReport.from_proto(response)
    assert report.workers[0].memory_limit == 2**34 and report.workers[0].loaded_stages == ("m/1",)
    assert report.models[0].stages[0].size == 2**33 and report.models[0].stages[0].recent_ms == (1.5,)
    document = json.loads(json.dumps(dataclasses.asdict(report)))
    assert document["workers"][0]["memory_limit"] == 2**34  # an int, where MessageToDict gave "17179869184"
    assert document["models"][0]["stages"][0]["workers"] == [IDS[0]]
    assert document["links"][0]["reachable"] is True


def test_inspection_at_80_columns_cuts_nothing() -> None:
    cut = {
        "position": 118, "after_node": "/encoder/layer.3/attention/output/LayerNorm/Add_1", "rank": 2,
        "natural": True, "flops_before": 7_000_000, "parameter_bytes_before": 28_000_000,
        "boundary_bytes": 98_304,
        "tensors": [{"name": "/encoder/layer.3/output/LayerNorm_output_0", "bytes": 98_304},
                    {"name": "attention_mask", "bytes": None}],
    }  # fmt: skip
    report = {
        "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 128]}],
        "outputs": [{"name": "hidden_states", "datatype": "FP32", "shape": [1, 128, 384]}],
        "nodes": 240, "parameter_bytes": 56_000_000, "flops": 14_000_000, "cuts": [cut],
        "quantized_bytes_estimate": {"int8": 14_000_000, "int4": 8_750_000},
    }  # fmt: skip
    console = Console(width=80, record=True)
    print_inspection("encoder.onnx", report, console=console)
    text = console.export_text()
    print(text)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_model_store_at_80_columns_shows_each_model_its_variants_and_the_quota() -> None:
    now = time.time()
    store = StoreStatus(
        path="/var/lib/edgeswarm-coordinator/store",
        quota=64 * 2**30,
        used=7 * 2**30,
        models=(
            StoredModel("llama-3b", "ab" * 32, 3 * 2**30, {"int8": 800 * 2**20, "int4": 500 * 2**20}, True,
                        now - 30, 3 * 2**30),
            StoredModel("encoder", "cd" * 32, 48 * 2**20, {}, False, now - 7200, 0),
        ),
    )  # fmt: skip
    console = Console(width=80, record=True)
    print_store(store, console)
    text = console.export_text()
    print(text)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "7.0 GiB of 64.0 GiB" in text
    assert "llama-3b" in text and "encoder" in text and "abababab" in text
    assert "800.0 MiB" in text and "0.26x" in text and "2 h ago" in text

import numpy as np
import pytest

from edgeswarm import codec
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm.coordinator.serving.request_checks import check_outputs, input_tensors, output_names
from edgeswarm.errors import InternalError, InvalidRequest
from edgeswarm.plans import Signature, TensorSpec

SIG = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)), TensorSpec("mask", "INT64", (-1, 4))),
    outputs=(TensorSpec("y", "FP32", (-1, 2)),),
)


def request(**arrays: np.ndarray) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="m")
    for name, array in arrays.items():
        req.inputs.add(name=name, datatype=codec.datatype_of(array), shape=list(array.shape))
        req.raw_input_contents.append(codec.to_bytes(array))
    return req


def test_good_request_passes_bytes_through_untouched() -> None:
    x, mask = np.ones((3, 4), np.float32), np.ones((3, 4), np.int64)
    tensors = input_tensors("m", SIG, request(x=x, mask=mask))
    assert [t.name for t in tensors] == ["x", "mask"]
    assert tensors[0].data == x.tobytes()


def test_typed_contents_are_accepted_too() -> None:
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1, 2, 3, 4])
    req.inputs.add(name="mask", datatype="INT64", shape=[1, 4]).contents.int64_contents.extend([1, 1, 0, 0])
    tensors = input_tensors("m", SIG, req)
    np.testing.assert_array_equal(codec.decode(tensors[0]), [[1, 2, 3, 4]])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.ones((1, 4), np.float32)}, r"missing input 'mask' \(INT64 \[-1, 4\]\)"),
        ({"x": np.ones((1, 4), np.float64), "mask": np.ones((1, 4), np.int64)}, "must be FP32, got FP64"),
        (
            {"x": np.ones((1, 5), np.float32), "mask": np.ones((1, 4), np.int64)},
            r"shape \[-1, 4\].*got \[1, 5\]",
        ),
        ({"x": np.ones(4, np.float32), "mask": np.ones((1, 4), np.int64)}, r"got \[4\]"),
        ({"z": np.ones(4, np.float32)}, "has no input 'z'; its inputs are x, mask"),
    ],
)
def test_bad_requests_name_the_problem(arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        input_tensors("m", SIG, request(**arrays))


def test_raw_bytes_must_match_the_shape() -> None:
    req = request(x=np.ones((1, 4), np.float32), mask=np.ones((1, 4), np.int64))
    req.raw_input_contents[0] = b"\0" * 12
    with pytest.raises(InvalidRequest, match="needs 16 bytes, got 12"):
        input_tensors("m", SIG, req)


def test_requested_outputs_are_checked() -> None:
    req = pb.ModelInferRequest(model_name="m")
    assert output_names("m", SIG, req) == ("y",)
    req.outputs.add(name="q")
    with pytest.raises(InvalidRequest, match="has no output 'q'"):
        output_names("m", SIG, req)


def test_a_worker_that_lies_about_its_outputs_is_caught() -> None:
    good = codec.encode("y", np.ones((1, 2), np.float32))
    check_outputs("m", SIG, ["y"], [good])
    with pytest.raises(InternalError, match=r"returned \['z'\], expected \['y'\]"):
        check_outputs("m", SIG, ["y"], [codec.encode("z", np.ones((1, 2), np.float32))])
    with pytest.raises(InternalError, match="came back as FP64"):
        check_outputs("m", SIG, ["y"], [codec.encode("y", np.ones((1, 2), np.float64))])
    short = codec.encode("y", np.ones((1, 2), np.float32))
    short.data = short.data[:4]
    with pytest.raises(InternalError, match="needs 8 bytes, got 4"):
        check_outputs("m", SIG, ["y"], [short])


@pytest.mark.parametrize(
    ("datatype", "field", "values", "message"),
    [
        ("UINT8", "uint_contents", [1, 300], r"UINT8 holds 0\.\.255, not 300"),
        ("INT8", "int_contents", [-129, 0], r"INT8 holds -128\.\.127, not -129"),
        ("FP16", "fp32_contents", [1.0, 1e6], r"1000000\.0 is beyond FP16's range"),
    ],
)
def test_typed_contents_a_datatype_cannot_hold_are_refused_not_wrapped(
    datatype: str, field: str, values: list[float], message: str
) -> None:
    sig = Signature(inputs=(TensorSpec("v", datatype, (2,)),), outputs=(TensorSpec("y", "FP32", (2,)),))
    req = pb.ModelInferRequest(model_name="m")
    getattr(req.inputs.add(name="v", datatype=datatype, shape=[2]).contents, field).extend(values)
    with pytest.raises(InvalidRequest, match=message):
        input_tensors("m", sig, req)

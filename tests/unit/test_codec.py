import numpy as np
import pytest

from edgeswarm import codec
from edgeswarm.errors import InvalidRequest


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_]
)
def test_round_trip_is_exact(dtype: type) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((2, 3, 5)) * 100).astype(dtype)
    back = codec.decode(codec.encode("t", array))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_non_contiguous_and_big_endian_arrays_travel_as_little_endian_c_order() -> None:
    array = np.arange(12, dtype=">i8").reshape(3, 4).T
    back = codec.decode(codec.encode("t", array))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.dtype("<i8")


def test_datatype_names_follow_kserve() -> None:
    assert codec.datatype_of(np.zeros(1, np.float32)) == "FP32"
    assert codec.datatype_of(np.zeros(1, np.bool_)) == "BOOL"
    assert codec.datatype_of(np.zeros(1, np.int64)) == "INT64"


def test_byte_count_must_match_shape() -> None:
    with pytest.raises(InvalidRequest, match="needs 24 bytes, got 20"):
        codec.from_bytes("x", "FP32", [2, 3], b"\0" * 20)


def test_unknown_datatype_is_named() -> None:
    with pytest.raises(InvalidRequest, match="'BF17'"):
        codec.dtype_of("BF17")


def test_decode_does_not_copy() -> None:
    tensor = codec.encode("t", np.arange(1000, dtype=np.float32))
    assert not codec.decode(tensor).flags.owndata


def test_declared_bytes_come_from_shape_and_datatype() -> None:
    tensor = codec.encode("t", np.zeros((3, 5), np.float16))
    assert codec.declared_bytes(tensor) == 30 == len(tensor.data)
    tensor.datatype = "BF17"
    assert codec.declared_bytes(tensor) == -1
    tensor.datatype = "FP16"
    tensor.shape[:] = [3, -5]
    assert codec.declared_bytes(tensor) == -1

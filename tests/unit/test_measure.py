"""The pure parts of measurement: machine classes by calibration, and drift of a worker's figures."""

from edgeswarm.coordinator.measure import DRIFT_TOLERANCE, drifted, machine_classes


def test_workers_within_15_percent_of_the_slowest_of_a_class_share_it() -> None:
    calibrations = {"a": 60.0, "b": 68.0, "c": 70.0, "d": 30.0, "e": 120.0}
    assert machine_classes(calibrations) == [["d"], ["a", "b"], ["c"], ["e"]]
    assert machine_classes({}) == []


def test_drift_is_a_move_of_more_than_the_tolerance_either_way() -> None:
    then = {"a": 60.0, "b": 60.0, "c": 60.0, "gone": 60.0}
    now = {"a": 60.0 * (1 + DRIFT_TOLERANCE) - 1, "b": 14.8, "c": 100.0, "new": 5.0}
    assert drifted(then, now) == {"b": (60.0, 14.8), "c": (60.0, 100.0)}


def test_an_unknown_figure_never_counts_as_drift() -> None:
    assert drifted({"a": 0.0, "b": 50.0}, {"a": 80.0, "b": 0.0}) == {}

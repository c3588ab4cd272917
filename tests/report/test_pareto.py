"""The one Pareto front of the sweep plots and the report scripts."""

import pytest

from sasim.report.pareto import pareto_front


def test_front_of_a_hand_drawn_set():
    #          0    1    2    3    4    5
    xs = [3.0, 1.0, 2.0, 2.0, 4.0, 1.0]
    ys = [1.0, 3.0, 2.0, 2.5, 0.5, 3.0]
    # 3 is beaten by 2 (same x, lower y); 0 beats nothing at x=4 but 4 has the lowest y; 1 and 5 tie on both
    assert pareto_front(xs, ys) == [1, 5, 2, 0, 4]


def test_a_point_beaten_on_one_axis_and_tied_on_the_other_is_off_the_front():
    assert pareto_front([1.0, 1.0], [2.0, 1.0]) == [1]
    assert pareto_front([1.0, 2.0], [1.0, 1.0]) == [0]


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="same length"):
        pareto_front([1.0], [1.0, 2.0])

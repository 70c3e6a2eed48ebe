import pytest

from llmsim.calibration.nnls import nnls


def test_an_exact_system_is_solved() -> None:
    truth = [0.006, 2e-5, 1.5e-4]
    rows = [[1.0, p, d] for p in (10, 500, 4000) for d in (1, 8, 60)]
    targets = [sum(a * x for a, x in zip(row, truth, strict=True)) for row in rows]
    assert nnls(rows, targets) == pytest.approx(truth, rel=1e-9)


def test_a_coefficient_that_would_be_negative_is_zero() -> None:
    rows = [[1.0, x] for x in range(10)]
    targets = [5.0 - 0.5 * x for x in range(10)]
    base, slope = nnls(rows, targets)
    assert slope == 0.0
    assert base == pytest.approx(sum(targets) / len(targets))


def test_weights_choose_which_rows_matter() -> None:
    rows = [[1.0], [1.0]]
    assert nnls(rows, [1.0, 3.0], [1.0, 1.0]) == pytest.approx([2.0])
    assert nnls(rows, [1.0, 3.0], [3.0, 1.0]) == pytest.approx([1.5])


def test_collinear_columns_still_give_a_solution() -> None:
    rows = [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]
    x = nnls(rows, [2.0, 4.0, 6.0])
    assert x[0] + 2 * x[1] == pytest.approx(2.0)
    assert min(x) >= 0


def test_no_rows_is_an_error() -> None:
    with pytest.raises(ValueError):
        nnls([], [])

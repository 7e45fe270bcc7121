"""4×4 Sudoku: all 288 grids, a split by grid with no leakage, unique-solution puzzles, d1's reward by hand."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.sudoku import all_grids, make_puzzles, reward, solutions, split_grids


def _is_solution(g: str) -> bool:
    rows = [g[r * 4:(r + 1) * 4] for r in range(4)]
    cols = ["".join(row[c] for row in rows) for c in range(4)]
    boxes = ["".join(rows[r][c] for r in (br, br + 1) for c in (bc, bc + 1)) for br in (0, 2) for bc in (0, 2)]
    return all(sorted(u) == list("1234") for u in rows + cols + boxes)


def test_there_are_288_distinct_valid_grids():
    grids = all_grids()
    assert len(grids) == 288 == len(set(grids)) and all(_is_solution(g) for g in grids)


def test_splits_share_no_grid_and_puzzles_have_one_solution():
    split = split_grids(0)
    assert len(split["train"]) == 200 and len(split["test"]) == 88 and not set(split["train"]) & set(split["test"])
    assert split_grids(0) == split and split_grids(1) != split
    test = make_puzzles("test", 30, seed=0)
    train = make_puzzles("train", 30, seed=0)
    assert all(p.count("0") == 8 for p, _ in test) and all(6 <= p.count("0") <= 10 for p, _ in train)
    assert all(solutions(p) == [s] for p, s in test + train)
    assert {s for _, s in test} <= set(split["test"]) and {s for _, s in train} <= set(split["train"])
    assert make_puzzles("test", 5, seed=3) == make_puzzles("test", 5, seed=3)
    with pytest.raises(ConfigError, match="splits"):
        make_puzzles("val", 1)


def test_reward_is_the_fraction_of_blanks_filled_correctly():
    puzzle, solution = "1200340000000000", "1234341221434321"
    blanks = [i for i, ch in enumerate(puzzle) if ch == "0"]
    assert reward(puzzle, solution, solution) == 1.0
    wrong_one = solution[:blanks[0]] + "9" + solution[blanks[0] + 1:]
    assert reward(puzzle, solution, wrong_one) == pytest.approx((len(blanks) - 1) / len(blanks))
    assert reward(puzzle, solution, "The grid: " + " ".join(solution)) == 1.0  # digits read in order
    assert reward(puzzle, solution, "12") == 0.0  # padded with blanks: nothing filled


def test_validation_puzzles_come_from_test_grids_and_avoid_the_test_puzzles():
    from thrifty.dlm.sudoku import val_puzzles

    test = make_puzzles("test", 64, seed=1000)
    avoid = {p for p, _ in test}
    val = val_puzzles(64, avoid)
    assert val == val_puzzles(64, avoid)  # deterministic
    assert not {p for p, _ in val} & avoid and len({p for p, _ in val}) == 64
    grids = set(split_grids()["test"])
    for p, s in val:
        assert s in grids and p.count("0") == 8 and solutions(p) == [s]
    # the same draw without the exclusion does hit test puzzles' grids but is a different stream from test's
    assert [p for p, _ in val_puzzles(8, set())] != [p for p, _ in test[:8]]

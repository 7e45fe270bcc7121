"""9×9 Sudoku: the solver counts solutions right, grids never cross the split, puzzles are unique, d1's reward."""

from __future__ import annotations

import random

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.sft import DlmSFTConfig, train_sft
from thrifty.dlm.sudoku9 import (
    count_solutions,
    grid_split,
    is_valid_grid,
    make_puzzle,
    make_puzzles,
    random_grid,
    reward,
    solutions,
)
from thrifty.dlm.tasks import get_task

# a shifted-pattern grid: row r is 1..9 rotated by 3r + r // 3
PATTERN = "".join(str((3 * r + r // 3 + c) % 9 + 1) for r in range(9) for c in range(9))
HARD = "800000000003600000070090200050007000000045700000100030001000068008500010090000400"
HARD_SOLUTION = "812753649943682175675491283154237896369845721287169534521974368438526917796318452"


def _blank(grid: str, cells: list[int]) -> str:
    return "".join("0" if i in cells else ch for i, ch in enumerate(grid))


def test_solver_counts_solutions_on_hand_made_grids():
    assert is_valid_grid(PATTERN) and not is_valid_grid(PATTERN[:80] + PATTERN[0])
    assert count_solutions(PATTERN) == 1 and solutions(_blank(PATTERN, [0, 40, 80])) == [PATTERN]
    assert count_solutions("0" * 81) == 2 and count_solutions("0" * 81, limit=5) == 5
    assert count_solutions("55" + "0" * 79) == 0  # two 5s in one row
    # two rows of one band blanked: swapping them keeps every row, column and box whole, so two solutions at least
    swapped = PATTERN[9:18] + PATTERN[:9] + PATTERN[18:]
    two_rows = _blank(PATTERN, list(range(18)))
    assert is_valid_grid(swapped) and swapped != PATTERN and count_solutions(two_rows) == 2
    assert {PATTERN, swapped} <= set(solutions(two_rows, limit=1000))
    assert solutions(HARD, limit=3) == [HARD_SOLUTION] and is_valid_grid(HARD_SOLUTION)
    with pytest.raises(ConfigError, match="81 digits"):
        count_solutions("123")


def test_random_grids_are_valid_seeded_and_varied():
    grids = [random_grid(random.Random(i)) for i in range(20)]
    assert all(is_valid_grid(g) for g in grids) and len(set(grids)) == 20
    assert random_grid(random.Random(3)) == grids[3]
    puzzle = make_puzzle(grids[0], 45, random.Random(0))
    assert puzzle is not None and puzzle.count("0") == 45 and solutions(puzzle) == [grids[0]]


def test_train_and_test_share_no_grid_and_puzzles_are_unique():
    train = make_puzzles("train", 400, seed=0, blanks=(16, 40))
    test = make_puzzles("test", 150, seed=0, blanks=(30, 30))
    assert not {s for _, s in train} & {s for _, s in test}
    assert all(grid_split(s) == "train" for _, s in train) and all(grid_split(s) == "test" for _, s in test)
    assert len({p for p, _ in train}) == 400 and all(16 <= p.count("0") <= 40 for p, _ in train)
    assert all(p.count("0") == 30 for p, _ in test)
    assert all(solutions(p) == [s] for p, s in train[:100] + test[:100])
    assert make_puzzles("test", 5, seed=3) == make_puzzles("test", 5, seed=3) != make_puzzles("test", 5, seed=4)
    with pytest.raises(ConfigError, match="blanks"):
        make_puzzles("train", 1, blanks=(0, 70))


def test_reward_is_the_fraction_of_blanks_filled_correctly():
    puzzle = _blank(PATTERN, [0, 1, 2, 3])
    assert reward(puzzle, PATTERN, PATTERN) == 1.0
    assert reward(puzzle, PATTERN, "9" + PATTERN[1:]) == 0.75  # PATTERN starts with 1
    assert reward(puzzle, PATTERN, " ".join(PATTERN[:2])) == 0.5  # digits in order, the rest padded as blanks
    assert reward(puzzle, PATTERN, "") == 0.0 and reward(PATTERN, PATTERN, "") == 1.0  # no blanks: full credit


def test_task_encoding_lengths_and_splits():
    task = get_task("sudoku9")
    train, test = task.examples("train", 20, seed=1), task.examples("test", 20, seed=1)
    for ex in train + test:
        assert task.reward(ex, ex.answer) == 1.0
        p, a = task.prompt_ids(ex), task.answer_ids(ex)
        assert len(p) == task.prompt_len + 1 and p[-1] == task.vocab.sep_id and len(a) == task.answer_len == 81
        assert task.decode(a) == ex.answer and task.vocab.decode(p) == ex.prompt
    assert all(ex.prompt.count("0") == 30 for ex in test) and task.seq_len == 163
    with pytest.raises(ConfigError, match="splits"):
        task.examples("val", 1)


def test_sft_runs_on_sudoku9(tmp_path):
    res = train_sft(DlmSFTConfig(task="sudoku9", run_dir=str(tmp_path), steps=2, d_model=16, n_layers=1, n_heads=2,
                                 d_ff=32, n_train=8, n_eval=2, batch_size=4, eval_every=1000), progress=False)
    assert res["step"] == 2 and 0.0 <= res["reward"] <= 1.0 and res["nfe"] == 81.0

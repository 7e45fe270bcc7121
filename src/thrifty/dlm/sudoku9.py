"""9×9 Sudoku for masked-diffusion models, split by solution grid: seeded random grids, unique-solution puzzles
(a bitmask backtracking solver counts solutions), d1's fraction-of-blanks reward.

Grids come from a randomised backtracking fill followed by a random relabelling of the digits. Each grid belongs
to train or test by a hash of the grid itself (a quarter to test), so no grid is ever in both splits. A puzzle
blanks cells of its grid in a random order, keeping only blanks that leave the solution unique. Defaults: train
puzzles have 16–40 blanks, test puzzles 30 — most such puzzles fall to repeated "only one digit fits this cell"
deductions, a local rule a small model can pick up in minutes, while the harder end of the range still leaves
room to improve. Puzzles and solutions are 81-character strings read row by row, ``0`` for a blank.
"""

from __future__ import annotations

import random

from thrifty.core.errors import ConfigError
from thrifty.dlm.leakage import split_of
from thrifty.dlm.tasks import CharVocab, DlmExample, DlmTask

TEST_SHARE = 0.25
FULL = 0b1111111110  # bits 1..9
_ROW = [i // 9 for i in range(81)]
_COL = [i % 9 for i in range(81)]
_BOX = [(i // 27) * 3 + (i % 9) // 3 for i in range(81)]


def _solve(cells: list[int], limit: int, rng: random.Random | None = None) -> list[str]:
    """Up to ``limit`` solutions of ``cells`` (0 = blank), by most-constrained-cell-first bitmask backtracking;
    ``rng`` shuffles the digit order (for random grids). Clashing clues give none."""
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for i, d in enumerate(cells):
        if d:
            bit = 1 << d
            if (rows[_ROW[i]] | cols[_COL[i]] | boxes[_BOX[i]]) & bit:
                return []
            rows[_ROW[i]] |= bit
            cols[_COL[i]] |= bit
            boxes[_BOX[i]] |= bit
    empties = [i for i, d in enumerate(cells) if not d]
    found: list[str] = []

    def search() -> None:
        best, best_mask, best_n = -1, 0, 10
        for i in empties:
            if not cells[i]:
                m = FULL & ~(rows[_ROW[i]] | cols[_COL[i]] | boxes[_BOX[i]])
                n = m.bit_count()
                if n < best_n:
                    best, best_mask, best_n = i, m, n
                    if n <= 1:
                        break
        if best < 0:
            found.append("".join(map(str, cells)))
            return
        digits = [d for d in range(1, 10) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        r, c, b = _ROW[best], _COL[best], _BOX[best]
        for d in digits:
            bit = 1 << d
            cells[best] = d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            search()
            cells[best] = 0
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[b] &= ~bit
            if len(found) >= limit:
                return

    search()
    return found


def _cells(puzzle: str) -> list[int]:
    if len(puzzle) != 81 or not puzzle.isdigit():
        raise ConfigError(f"a 9×9 puzzle is 81 digits (0 = blank), got {puzzle!r}")
    return [int(ch) for ch in puzzle]


def solutions(puzzle: str, limit: int = 2) -> list[str]:
    """Up to ``limit`` solutions of an 81-digit puzzle (``0`` = blank)."""
    return _solve(_cells(puzzle), limit)


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """The number of solutions, counted up to ``limit`` (2 is enough to tell unique from not)."""
    return len(solutions(puzzle, limit))


def is_valid_grid(grid: str) -> bool:
    """Every row, column and box holds the digits 1–9 once."""
    if len(grid) != 81 or "0" in grid or not grid.isdigit():
        return False
    units = [[i for i in range(81) if key[i] == k] for key in (_ROW, _COL, _BOX) for k in range(9)]
    return all(sorted(grid[i] for i in unit) == list("123456789") for unit in units)


def random_grid(rng: random.Random) -> str:
    """A random solved grid: a shuffled backtracking fill, then a random relabelling of the digits."""
    grid = _solve([0] * 81, 1, rng)[0]
    labels = list("123456789")
    rng.shuffle(labels)
    return "".join(labels[int(ch) - 1] for ch in grid)


def grid_split(grid: str) -> str:
    return split_of(f"sudoku9:{grid}", TEST_SHARE)


def make_puzzle(grid: str, blanks: int, rng: random.Random) -> str | None:
    """A puzzle of ``grid`` with exactly ``blanks`` blanks and a unique solution, or None if this draw fails."""
    order = rng.sample(range(81), 81)
    cells = [int(ch) for ch in grid]
    trial = cells.copy()
    for i in order[:blanks]:
        trial[i] = 0
    if len(_solve(trial, 2)) == 1:  # most draws: one check
        return "".join(map(str, trial))
    made = 0
    for i in order:  # otherwise blank cell by cell, skipping any that would admit a second solution
        if made == blanks:
            break
        d, cells[i] = cells[i], 0
        if len(_solve(cells.copy(), 2)) == 1:
            made += 1
        else:
            cells[i] = d
    return "".join(map(str, cells)) if made == blanks else None


def make_puzzles(split: str, n: int, seed: int = 0, blanks: tuple[int, int] = (30, 30)) -> list[tuple[str, str]]:
    """``n`` distinct (puzzle, solution) pairs whose grids belong to ``split``, drawn deterministically."""
    lo, hi = blanks
    if not 1 <= lo <= hi <= 64:  # 17 clues is the fewest any unique 9×9 puzzle has
        raise ConfigError(f"9×9 blanks must satisfy 1 <= lo <= hi <= 64, got {blanks}")
    rng = random.Random(f"sudoku9-{split}-{seed}-{lo}-{hi}")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    failures = 0
    while len(out) < n:
        grid = random_grid(rng)
        if grid_split(grid) != split:
            continue
        puzzle = make_puzzle(grid, rng.randint(lo, hi), rng)
        if puzzle is None or puzzle in seen:
            failures += 1
            if failures > 100 + n:
                raise ConfigError(f"could not draw {n} unique-solution 9×9 puzzles with {lo}–{hi} blanks")
            continue
        seen.add(puzzle)
        out.append((puzzle, grid))
    return out


def reward(puzzle: str, solution: str, answer: str) -> float:
    """Fraction of the puzzle's blank cells that ``answer`` fills correctly (d1's Sudoku reward); the answer's
    digits are read in order, padded or truncated to 81."""
    digits = "".join(ch for ch in answer if ch.isdigit())[:81].ljust(81, "0")
    blank = [i for i, ch in enumerate(puzzle) if ch == "0"]
    return sum(digits[i] == solution[i] for i in blank) / len(blank) if blank else 1.0


class Sudoku9(DlmTask):
    """9×9 Sudoku split by solution grid: 81 clue digits in, 81 digits out."""

    prompt_len = 81
    answer_len = 81

    def __init__(self, train_blanks: tuple[int, int] = (16, 40), test_blanks: int = 30,
                 name: str = "sudoku9") -> None:
        self.name = name
        self.vocab = CharVocab("0123456789")
        self.blanks = {"train": tuple(train_blanks), "test": (test_blanks, test_blanks)}

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        self.check_split(split)
        return [DlmExample(p, s) for p, s in make_puzzles(split, n, seed, self.blanks[split])]

    def reward(self, ex: DlmExample, text: str) -> float:
        return reward(ex.prompt, ex.answer, text)

    def config(self) -> dict:
        return {**super().config(), "train_blanks": list(self.blanks["train"]), "test_blanks": self.blanks["test"][0]}


__all__ = ["TEST_SHARE", "Sudoku9", "count_solutions", "grid_split", "is_valid_grid", "make_puzzle", "make_puzzles",
           "random_grid", "reward", "solutions"]

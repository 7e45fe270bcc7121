"""4×4 Sudoku for masked-diffusion models, leakage-free: every one of the 288 solution grids is enumerated, the
grids (not the puzzles) are split 200 train / 88 test by a seeded shuffle, and a puzzle is kept only when its
clues admit exactly one of the 288 grids. Train puzzles have 6–10 blanks, test puzzles 8 (as in d1's test set).
A validation set for choosing hyperparameters (:func:`val_puzzles`) is drawn from the test grids too (every train
grid is trained on), with its own seed stream, and never holds a puzzle of the test set it is told to avoid.

Puzzles and solutions are 16-character strings read row by row, ``0`` for a blank. The reward (d1) is the
fraction of originally-empty cells the answer fills correctly; the answer's digits are taken in order, padded or
truncated to 16.
"""

from __future__ import annotations

import random
from functools import lru_cache

from thrifty.core.errors import ConfigError

N_TRAIN_GRIDS = 200
BLANKS = {"train": (6, 10), "test": (8, 8)}


def _valid(cells: list[int], i: int, d: int) -> bool:
    r, c = divmod(i, 4)
    box = [(r // 2 * 2 + a) * 4 + c // 2 * 2 + b for a in range(2) for b in range(2)]
    return all(cells[r * 4 + k] != d for k in range(4)) and all(cells[k * 4 + c] != d for k in range(4)) and \
        all(cells[j] != d for j in box)


@lru_cache(maxsize=1)
def all_grids() -> tuple[str, ...]:
    """Every solved 4×4 Sudoku grid (288), sorted."""
    out: list[str] = []
    cells = [0] * 16

    def fill(i: int) -> None:
        if i == 16:
            out.append("".join(map(str, cells)))
            return
        for d in range(1, 5):
            if _valid(cells, i, d):
                cells[i] = d
                fill(i + 1)
                cells[i] = 0

    fill(0)
    return tuple(sorted(out))


def split_grids(seed: int = 0) -> dict[str, list[str]]:
    """The grids of each split (train 200, test 88), by a seeded shuffle."""
    grids = list(all_grids())
    random.Random(seed).shuffle(grids)
    return {"train": sorted(grids[:N_TRAIN_GRIDS]), "test": sorted(grids[N_TRAIN_GRIDS:])}


def solutions(puzzle: str) -> list[str]:
    """The grids consistent with a puzzle's clues."""
    return [g for g in all_grids() if all(p in ("0", s) for p, s in zip(puzzle, g, strict=True))]


def make_puzzles(split: str, n: int, seed: int = 0, split_seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (puzzle, solution) pairs of ``split`` with a unique solution, drawn deterministically."""
    if split not in BLANKS:
        raise ConfigError(f"4×4 Sudoku has splits {', '.join(BLANKS)}, got {split!r}")
    grids = split_grids(split_seed)[split]
    lo, hi = BLANKS[split]
    return _draw(random.Random(f"sudoku4-{split}-{seed}"), grids, lo, hi, n, set(),
                 f"could not draw {n} distinct unique-solution {split} puzzles")


def _draw(rng: random.Random, grids: list[str], lo: int, hi: int, n: int, seen: set[str],
          failure: str) -> list[tuple[str, str]]:
    """``n`` distinct unique-solution (puzzle, grid) pairs from ``grids`` with ``lo``–``hi`` blanks, none in
    ``seen``; ``failure`` is the one-line error when they cannot be found."""
    out, seen, tries = [], set(seen), 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise ConfigError(failure)
        grid = rng.choice(grids)
        blanks = set(rng.sample(range(16), rng.randint(lo, hi)))
        puzzle = "".join("0" if i in blanks else ch for i, ch in enumerate(grid))
        if puzzle in seen or solutions(puzzle) != [grid]:
            continue
        seen.add(puzzle)
        out.append((puzzle, grid))
    return out


def val_puzzles(n: int, exclude: set[str], seed: int = 0, split_seed: int = 0) -> list[tuple[str, str]]:
    """``n`` validation (puzzle, solution) pairs: unique-solution puzzles of the test grids with the test split's
    blanks, drawn from a seed stream of their own and disjoint from ``exclude`` (the test puzzles numbers are
    reported on). Train/test membership is untouched; validation shares the test grids, not their puzzles."""
    grids = split_grids(split_seed)["test"]
    lo, hi = BLANKS["test"]
    return _draw(random.Random(f"sudoku4-val-{seed}"), grids, lo, hi, n, set(exclude),
                 f"could not draw {n} distinct validation puzzles outside the {len(exclude)} excluded")


def reward(puzzle: str, solution: str, answer: str) -> float:
    """Fraction of the puzzle's blank cells that ``answer`` fills correctly (d1's Sudoku reward)."""
    digits = "".join(ch for ch in answer if ch.isdigit())[:16].ljust(16, "0")
    blanks = [i for i, ch in enumerate(puzzle) if ch == "0"]
    return sum(digits[i] == solution[i] for i in blanks) / len(blanks) if blanks else 1.0


__all__ = ["BLANKS", "N_TRAIN_GRIDS", "all_grids", "make_puzzles", "reward", "solutions", "split_grids", "val_puzzles"]

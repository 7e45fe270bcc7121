"""Memory truncation modes: by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.truncate import TRUNCATIONS, merge_similar, truncate

S = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.0, 2.0]])


def test_head_tail_random_keep_the_right_rows():
    assert torch.equal(truncate(S, 2, "head"), S[:2]) and torch.equal(truncate(S, 2, "tail"), S[2:])
    a = truncate(S, 3, "random", torch.Generator().manual_seed(5))
    b = truncate(S, 3, "random", torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (3, 2)
    rows = [next(i for i in range(4) if torch.equal(S[i], r)) for r in a]
    assert rows == sorted(rows) and len(set(rows)) == 3  # distinct rows in their original order
    for mode in TRUNCATIONS[:3]:
        assert truncate(S, 0, mode, torch.Generator()).shape == (0, 2) and torch.equal(
            truncate(S, 4, mode, torch.Generator()), S)


def test_merge_averages_the_most_similar_pairs_by_hand():
    # rows 1 and 3 point the same way (cosine 1): merged first into their mean (0, 1.5) at position 1
    three = merge_similar(S, 3)
    assert torch.allclose(three, torch.tensor([[1.0, 0.0], [0.0, 1.5], [0.9, 0.1]]))
    # then rows 0 and 2 (cosine 0.994): the mean (0.95, 0.05) at position 0
    assert torch.allclose(merge_similar(S, 2), torch.tensor([[0.95, 0.05], [0.0, 1.5]]))
    # a group's mean weighs its members: merging {0, 2} with {1, 3} gives the mean of all four rows
    assert torch.allclose(merge_similar(S, 1), S.mean(0, keepdim=True))
    assert torch.equal(truncate(S, 4, "merge"), S)


def test_bad_requests_are_one_line_errors():
    with pytest.raises(ConfigError, match="cannot keep"):
        truncate(S, 5)
    with pytest.raises(ConfigError, match="Generator"):
        truncate(S, 2, "random")
    with pytest.raises(ConfigError, match="unknown truncation"):
        truncate(S, 2, "best")

"""Every RL algorithm a config accepts has exactly one update builder in the loop's registry."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import ALGOS, DlmRLConfig
from thrifty.dlm.rl.loop import UPDATES


def test_every_algorithm_has_one_update_builder():
    assert set(UPDATES) == set(ALGOS)
    assert UPDATES["diffu_grpo"] is UPDATES["diffpo"] and UPDATES["dtrpo"] is UPDATES["vrpo"]
    assert UPDATES["sft"] not in (UPDATES["diffu_grpo"], UPDATES["dtrpo"])


def test_an_unknown_algorithm_or_switch_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown algo 'ppo'"):
        DlmRLConfig(algo="ppo")
    with pytest.raises(ConfigError, match="unknown pair_remasking 'sideways'"):
        DlmRLConfig(algo="dtrpo", pair_remasking="sideways")
    with pytest.raises(ConfigError, match="unknown trajectory_terms 'all'"):
        DlmRLConfig(algo="dtrpo", trajectory_terms="all")

"""The user's data format for `dlm rl --hf-model`: JSONL prompts through the chat template, left-padded and
truncated from the left; rewards as `module:function` callables, summed with weights; bad input as one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from _dlm_hf_tiny import tokenizer, write_data

from thrifty.core.errors import ConfigError
from thrifty.dlm.data import PromptTask, prompt_token_ids, read_jsonl, split_rows
from thrifty.dlm.rewards import RewardSum, load_callable
from thrifty.dlm.rl.config import DlmRLConfig


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def _task(tok, rows, reward=lambda p, c, **_: [float(len(x)) for x in c], **kw):
    return PromptTask(tok, rows, rows[:1], 4, reward, tok.mask_token_id, tok.eos_token_id, **kw)


def test_prompts_go_through_the_chat_template_and_are_left_padded(tok):
    ids = prompt_token_ids(tok, "a b")
    assert tok.convert_ids_to_tokens(ids) == ["<|user|>", "a", "b", "<|end|>", "<|assistant|>"]
    assert prompt_token_ids(tok, [{"role": "user", "content": "a b"}]) == ids
    assert tok.convert_ids_to_tokens(prompt_token_ids(tok, "a b", chat_template=False)) == ["a", "b"]
    task = _task(tok, [{"prompt": "a b"}, {"prompt": "a b c d", "gold": 1}])
    assert task.prompt_len == 7 and task.columns == ["gold"]
    short = task.prompt_ids(task.examples("train", 1)[0])
    assert short[:2] == [tok.pad_token_id] * 2 and short[2:] == ids
    clipped = _task(tok, [{"prompt": "a b c d"}], max_prompt_len=3)  # the row is in both splits: 2 truncated
    ex = clipped.examples("train", 5)[0]
    assert clipped.truncated == 2 and tok.convert_ids_to_tokens(clipped.prompt_ids(ex)) == ["d", "<|end|>",
                                                                                           "<|assistant|>"]


def test_answers_decode_up_to_eos_and_rewards_score_a_batch_with_columns(tok):
    calls = []

    def reward(prompts, completions, gold, **_):
        calls.append(len(completions))
        return [1.0 if c == g else 0.25 for c, g in zip(completions, gold, strict=True)]

    task = _task(tok, [{"prompt": "a", "gold": "b c"}, {"prompt": [{"role": "user", "content": "d"}], "gold": "e"}],
                 reward=reward)
    eos, mask = tok.eos_token_id, tok.mask_token_id
    b, c, e = tok.convert_tokens_to_ids(["b", "c", "e"])
    assert task.decode([b, c, eos, e]) == "b c" and task.decode([b, mask, c, e]) == "b c e"
    exs = task.examples("train", 2)
    assert task.score(exs, ["b c", "x"]) == ([1.0, 0.25], [True, False]) and calls == [2]
    assert task.reward(exs[1], "e") == 1.0 and task.solved(exs[1], "e") and calls == [2, 1]  # solved reuses it
    with pytest.raises(ConfigError, match="no reference answers"):
        task.answer_ids(exs[0])


def test_jsonl_errors_name_the_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    for text, msg in [('{"prompt": "a"}\n{oops\n', r"p\.jsonl:2: not JSON"),
                      ('{"question": "a"}\n', r":1: each line must be an object with a \"prompt\""),
                      ('{"prompt": [{"role": "user"}]}\n', "string or a list"), ("\n", "no prompts")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            read_jsonl(bad)
    with pytest.raises(ConfigError, match="no prompt file"):
        read_jsonl(tmp_path / "absent.jsonl")


def test_held_out_rows_are_a_seeded_split():
    rows = [{"prompt": str(i)} for i in range(10)]
    train, test = split_rows(rows, 3, seed=1)
    assert len(train) == 7 and len(test) == 3 and not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert split_rows(rows, 3, seed=1) == (train, test) and split_rows(rows, 3, seed=2) != (train, test)
    with pytest.raises(ConfigError, match="leaves none to train on"):
        split_rows(rows, 10, seed=0)


def test_rewards_load_by_module_or_file_and_sum_with_weights(tmp_path, monkeypatch):
    _, path = write_data(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_callable("my_rewards:match_target")(["p"], ["a a b"], target=["a"]) == [0.5]
    assert load_callable("json:dumps") is json.dumps
    both = RewardSum([f"{path}:match_target", "my_rewards:match_target", f"{path}:skip_all"], [1.0, 0.5, 9.0])
    assert both(["p", "q"], ["a a", "b"], target=["a", "c"]) == [0.75, 0.0]
    for spec, msg in [("nocolon", "must look like module:function"), ("no_such_mod_xyz:f", "no module named"),
                      ("my_rewards:missing", "has no attribute 'missing'"), ("my_rewards:not_a_function", "not a "
                      "function"), (f"{tmp_path}/absent.py:f", "no file")]:
        with pytest.raises(ConfigError, match=msg):
            load_callable(spec)
    with pytest.raises(ConfigError, match="returned 1 values for 2 completions"):
        RewardSum(["my_rewards:match_target"])(["p", "q"], ["a", "b"], target=["a"])
    with pytest.raises(ConfigError, match="reward_weights has 1 entries for 2"):
        RewardSum(["json:dumps", "json:loads"], [1.0])


def test_hf_config_checks_are_one_line_errors():
    ok = {"hf_model": "m", "prompts_file": "p.jsonl", "reward_funcs": ["m:f"]}
    DlmRLConfig(**ok)
    for extra, msg in [({"algo": "sft"}, "SFT control"), ({"ref_sync_every": 64}, "ref_sync_every must be 0"),
                       ({"prompts_file": ""}, "needs prompts_file"), ({"reward_weights": [1.0, 2.0]}, "reward_weights"),
                       ({"hf_dtype": "int8"}, "unknown hf_dtype"), ({"joint_sampler": True, "algo": "diffpo",
                                                                     "train_policy": False}, "train_policy stays on")]:
        with pytest.raises(ConfigError, match=msg):
            DlmRLConfig(**{**ok, **extra})


def test_auto_dtype_is_float32_on_cpu():
    from thrifty.dlm.hf_train import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("bfloat16") == torch.bfloat16

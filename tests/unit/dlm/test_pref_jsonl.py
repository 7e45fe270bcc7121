"""Text preference pairs (JSONL prompt/chosen/rejected) for dTRPO and VRPO on a Hugging Face checkpoint: the
fallback order (confidence order under the reference) against hand numbers, EOS fill and validity, bad rows as
one-line errors, and both algorithms training a tiny random masked LM from such a file end to end."""

from __future__ import annotations

import json

import pytest
import torch
from _dlm_hf_tiny import rl_config, tokenizer, write_user_files

from thrifty.core.errors import ConfigError
from thrifty.dlm.pref_data import fit_answer, read_pref_jsonl, tokenize_pairs
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.order import confidence_order
from thrifty.dlm.rl.trajectory import decoded_in_blocks

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # PEFT ↔ transformers 5
MASK = 0
PAIRS = [{"prompt": "a b", "chosen": "c d", "rejected": "e"},
         {"prompt": [{"role": "user", "content": "b c"}], "chosen": "d", "rejected": "f g h a b c"},
         {"prompt": "d", "chosen": "a b c d", "rejected": "h h"}]


def _state_dependent(state: torch.Tensor) -> torch.Tensor:
    """Hand scores: row 0 prefers position 1, then (once position 0 is in) position 3 over 2; row 1 ties."""
    base = torch.tensor([[-1.0, -0.5, -2.0, -3.0], [-1.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    base[0, 3] += 2.5 * float(state[0, 0] != MASK)
    return base


def test_fallback_order_commits_the_most_probable_answer_token_of_the_block_each_step():
    answer = torch.tensor([[10, 11, 12, 13], [10, 11, 12, 13]])
    steps = confidence_order(_state_dependent, answer, block_len=2, schedule=[1, 1], mask_id=MASK)
    # row 0, block 0: −0.5 (pos 1) beats −1 (pos 0): pos 1 at step 0, pos 0 at step 1; block 1: pos 0 now in, so
    # pos 3 scores −0.5 > −2 (pos 2): pos 3 at step 2, pos 2 at step 3. Row 1 ties everywhere: earlier first.
    assert steps.tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]
    one_block = confidence_order(_state_dependent, answer, block_len=4, schedule=[1, 3], mask_id=MASK)
    # one block: step 0 takes pos 1 (−0.5); pos 0 is still masked so pos 3 stays at −3: the other three at step 1
    assert one_block.tolist() == [[1, 0, 1, 1], [0, 1, 1, 1]]
    impossible = confidence_order(lambda s: torch.full(s.shape, -torch.inf), answer[:1], 2, [1, 1], MASK)
    assert impossible.tolist() == [[0, 1, 2, 3]]  # −inf candidates still beat positions outside the block
    with pytest.raises(ConfigError, match="add up to block_len"):
        confidence_order(_state_dependent, answer, 2, [1], MASK)
    with pytest.raises(ConfigError, match="multiple of block_len"):
        confidence_order(_state_dependent, answer, 3, [3], MASK)


def test_answers_are_eos_filled_or_cut_with_a_validity_mask(tmp_path):
    assert fit_answer([5, 6], 4, eos_id=3) == ([5, 6, 3, 3], [True, True, True, False])
    assert fit_answer([], 2, eos_id=3) == ([3, 3], [True, False])
    assert fit_answer([1, 2, 3, 4, 5], 4, eos_id=9) == ([1, 2, 3, 4], [True] * 4)
    tok = tokenizer()
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    out = tokenize_pairs(read_pref_jsonl(path), tok, 4, tok.mask_token_id, tok.eos_token_id, tok.pad_token_id, 32)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    assert tok.convert_ids_to_tokens(out.chosen[0].tolist()) == ["c", "d", "[EOS]", "[EOS]"]
    assert out.chosen_valid[0].tolist() == [True, True, True, False]
    assert tok.convert_ids_to_tokens(out.rejected[1].tolist()) == ["f", "g", "h", "a"]  # cut: no EOS
    assert out.rejected_valid[1].all() and out.stats["answers_truncated"] == 1.0
    assert out.chosen[2].tolist() == tok.convert_tokens_to_ids(["a", "b", "c", "d"]) and eos not in out.chosen[2]
    # prompts through the chat template, left-padded to the longest
    assert tok.convert_ids_to_tokens(out.prompt_ids[2].tolist()) == ["[PAD]", "<|user|>", "d", "<|end|>",
                                                                      "<|assistant|>"]
    assert out.prompt_ids.shape == (3, 5) and bool((out.prompt_ids[0] != pad).all())
    assert out.stats["chosen_tokens"] == pytest.approx((3 + 2 + 4) / 3)


def test_bad_pair_rows_are_one_line_errors_naming_the_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    good = json.dumps(PAIRS[0])
    for text, msg in [(f"{good}\n{{oops\n", r"p\.jsonl:2: not JSON"),
                      (f"{good}\n\n" + json.dumps({"prompt": "a", "chosen": "b"}) + "\n", r":3: missing rejected"),
                      (json.dumps({"prompt": 3, "chosen": "b", "rejected": "c"}), r":1: \"prompt\" must be"),
                      (json.dumps({"prompt": "a", "chosen": ["b"], "rejected": "c"}), r":1: \"chosen\" must be a str"),
                      (json.dumps({"prompt": "a", "chosen": "b", "rejected": "b"}), "prefers nothing"),
                      ("[1, 2]\n", "must be an object"), ("\n", "no pairs")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            read_pref_jsonl(bad)
    with pytest.raises(ConfigError, match="no pairs file here"):
        read_pref_jsonl(tmp_path / "absent.jsonl")
    tok = tokenizer()
    bad.write_text(good + "\n" + json.dumps({"prompt": "a", "chosen": "b [MASK]", "rejected": "c"}) + "\n")
    with pytest.raises(ConfigError, match=r"p\.jsonl:2: the row contains the mask token"):
        tokenize_pairs(read_pref_jsonl(bad), tok, 4, tok.mask_token_id, tok.eos_token_id, tok.pad_token_id, 32)
    bad.write_text(json.dumps({"prompt": "a", "chosen": "b c d e", "rejected": "b c d e f"}) + "\n")
    with pytest.raises(ConfigError, match=r"p\.jsonl:1: chosen and rejected are the same once cut to gen_len=4"):
        tokenize_pairs(read_pref_jsonl(bad), tok, 4, tok.mask_token_id, tok.eos_token_id, tok.pad_token_id, 32)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_pref")
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    return (*write_user_files(folder), pairs)


def _cfg(user_files, run, algo, **extra):
    return rl_config(user_files, run, algo=algo, pairs_file=str(user_files[3]), steps=2, n_eval=2, gen_len=4,
                       max_prompt_len=32, lora_r=4, lora_alpha=8.0, eval_every=2, checkpoint_every=2, lr=1e-2,
                       pair_batch=2, mc_n=2, block_len=2, rollout_steps=4, **extra)


class _Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, ids):
        self.calls += 1
        return self.model(ids)


def test_text_pairs_get_the_references_confidence_order_for_dtrpo_and_none_for_vrpo(user_files, tmp_path):
    from thrifty.dlm.hf_train import hf_setup
    from thrifty.dlm.rl.text_pairs import prepare_text_pairs

    cfg = _cfg(user_files, tmp_path / "x", "dtrpo")
    hf = hf_setup(cfg)
    ref = _Counting(hf.ref)
    pairs, stats = prepare_text_pairs(cfg, hf.task, ref, read_pref_jsonl(cfg.pairs_file), block_len=2)
    assert stats["pairs"] == 3 and ref.calls > 0
    mask = hf.task.vocab.mask_id
    for prompt, answer, steps in ((pairs.prompt_ids, pairs.chosen, pairs.chosen_steps),
                                  (pairs.prompt_ids, pairs.rejected, pairs.rejected_steps)):
        assert decoded_in_blocks(steps, 2)
        # replay the order independently: each step's position has the reference's highest answer-token
        # log-prob among the block's still-masked positions (rollout default: 1 token a step in blocks of 2)
        for s in range(4):
            state = torch.where(steps < s, answer, torch.full_like(answer, mask))
            with torch.no_grad():
                logp = torch.log_softmax(hf.ref(torch.cat([prompt, state], 1))[:, prompt.shape[1]:].double(), -1)
            lp = logp.gather(-1, answer[..., None]).squeeze(-1)
            block = slice(2 * (s // 2), 2 * (s // 2) + 2)
            cand = (steps >= s)[:, block]
            best = lp[:, block].masked_fill(~cand, -torch.inf).argmax(dim=1)
            assert torch.equal(steps[:, block].gather(1, best[:, None]).squeeze(1), torch.full((3,), s))
    vrpo = _cfg(user_files, tmp_path / "y", "vrpo")
    ref.calls = 0
    pairs, _ = prepare_text_pairs(vrpo, hf.task, ref, read_pref_jsonl(vrpo.pairs_file), block_len=2)
    assert ref.calls == 0 and bool((pairs.chosen_steps == -1).all()) and bool((pairs.rejected_steps == -1).all())


@pytest.mark.parametrize("algo", ["dtrpo", "vrpo"])
def test_dtrpo_and_vrpo_train_lora_from_a_jsonl_pair_file(user_files, tmp_path, monkeypatch, algo):
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    from thrifty.dlm import hf_train
    from thrifty.dlm.rl.loop import train_rl

    seen = []
    real = hf_train.hf_setup
    monkeypatch.setattr(hf_train, "hf_setup", lambda cfg, device=None: seen.append(real(cfg, device)) or seen[-1])
    run = tmp_path / algo
    res = train_rl(_cfg(user_files, run, algo), progress=False)
    assert res["step"] == 2
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records[1:])
    assert records[1]["pairs"] == 3.0 and records[1]["answers_truncated"] == 1.0  # the text pairs' statistics
    assert not (run / "pairs.safetensors").exists()  # the file's pairs were used, none sampled
    ck = load_file(str(run / "checkpoint" / "adapter.safetensors"))
    assert ck and all("lora_" in k for k in ck) and (run / "adapter").is_dir()
    peft_model = seen[0].policy.model
    original = AutoModelForMaskedLM.from_pretrained(user_files[0]).state_dict()
    trained = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in peft_model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(original[k], trained[k]) for k in original)  # the base stays bit for bit
    assert any(bool(v.abs().sum() > 0) for k, v in peft_model.state_dict().items() if "lora_B" in k)


def test_dlm_rl_cli_takes_a_jsonl_pairs_file(user_files, tmp_path, capsys):
    from thrifty.cli.main import main

    model, prompts, rewards, pairs = user_files
    sets = [a for k, v in {"n_eval": 2, "gen_len": 4, "lora_r": 4, "pair_batch": 2, "mc_n": 2}.items()
            for a in ("--set", f"{k}={v}")]
    argv = ["dlm", "rl", "--algo", "vrpo", "--hf-model", str(model), "--prompts-file", str(prompts), "--pairs-file",
            str(pairs), "--reward", f"{rewards}:match_target", "--run-dir", str(tmp_path / "rl"), "--steps", "1", *sets]
    assert main(argv) == 0
    assert "vrpo: step 1" in capsys.readouterr().out
    assert "pairs.jsonl" in (tmp_path / "rl" / "config.yaml").read_text()


def test_text_pairs_need_a_tokenizer(tmp_path):
    from thrifty.dlm.rl.text_pairs import prepare_text_pairs
    from thrifty.dlm.tasks import get_task

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIRS[0]) + "\n")
    cfg = DlmRLConfig(algo="dtrpo", pairs_file=str(path))
    with pytest.raises(ConfigError, match=r"pairs\.jsonl: text preference pairs need a tokenizer"):
        prepare_text_pairs(cfg, get_task("sudoku4"), None, read_pref_jsonl(path), block_len=4)

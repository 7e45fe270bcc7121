"""Memory-lean answer log-probs (what real checkpoints need): the estimators normalise only the answer positions, in
float32 at most — no (batch, sequence, vocab) tensor and nothing float64 over the vocabulary — and still agree with
the float64 log-softmax of the whole sequence, in value and gradient."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from thrifty.dlm.likelihood import block_single_pass, mc_elbo, one_step_mean_field, trajectory_replay

V, MASK, B, P, G = 97, 96, 2, 40, 4  # a vocabulary size no other dimension shares


class Table(torch.nn.Module):
    """ids -> logits by a lookup table (sharp, so some log-probs are tiny); records nothing itself."""

    def __init__(self, dtype=torch.float32) -> None:
        super().__init__()
        w = torch.randn(V, V, generator=torch.Generator().manual_seed(0)) * 12
        self.w = torch.nn.Parameter(w.to(dtype))
        self.recorder: Record | None = None

    def forward(self, ids):
        if self.recorder is not None:
            self.recorder.paused = True
        try:
            return self.w[ids]  # (B, L, V)
        finally:
            if self.recorder is not None:
                self.recorder.paused = False


class Record(TorchDispatchMode):
    """Shape and dtype of every tensor an op makes outside the model, and of every tensor autograd saves."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[tuple[int, ...], torch.dtype]] = []
        self.saved: list[tuple[tuple[int, ...], torch.dtype]] = []
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused:
            self.made += [(tuple(t.shape), t.dtype) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        return out

    def pack(self, t):
        if not self.paused:
            self.saved.append((tuple(t.shape), t.dtype))
        return t


def _over_vocab(record: Record) -> set[tuple[tuple[int, ...], torch.dtype]]:
    """Floating-point tensors with a vocabulary axis (the (V,) id range and its mask are integers and booleans)."""
    return {(shape, dtype) for shape, dtype in record.made + record.saved
            if shape and shape[-1] == V and dtype.is_floating_point}


def _run(model, fn):
    rec = Record()
    model.recorder = rec
    with torch.autograd.graph.saved_tensors_hooks(rec.pack, lambda t: t), rec:
        out = fn()
    model.recorder = None
    return out, _over_vocab(rec)


def _data():
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, MASK, (B, P), generator=gen)
    answer = torch.randint(0, MASK, (B, G), generator=gen)
    steps = torch.tensor([[0, 0, 1, 1], [1, 0, 1, 0]])
    return prompt, answer, steps


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_only_answer_positions_are_normalised_and_never_in_float64(dtype):
    model, (prompt, answer, steps) = Table(dtype), _data()
    calls = {
        "one_step": (lambda: one_step_mean_field(model, prompt, answer, MASK)[0], B),
        "replay": (lambda: trajectory_replay(model, prompt, answer, steps, MASK)[0], B),
        "elbo": (lambda: mc_elbo(model, prompt, answer, MASK, torch.Generator().manual_seed(0), n=2)[0], B),
        "block": (lambda: block_single_pass(model, prompt, answer, steps, 2, MASK, torch.Generator())[0], 2 * B),
    }
    for name, (fn, rows) in calls.items():
        out, seen = _run(model, fn)
        assert out.dtype == torch.float64 and out.requires_grad, name  # per-token results: float64, (B, G) at most
        assert seen, name
        for shape, dt in seen:
            assert shape == (rows, G, V), (name, shape)  # the answer slice only: never (B, P + G, V)
            assert dt in (torch.float32, torch.bfloat16) and dt != torch.float64, (name, dt)
    # the checker does catch the old way (float64 log-softmax over the whole sequence)
    old = lambda: torch.log_softmax(model(torch.cat([prompt, answer], 1)).double(), -1)[:, P:]  # noqa: E731
    assert ((B, P + G, V), torch.float64) in _run(model, old)[1]


def test_values_and_gradients_match_the_float64_softmax():
    model, (prompt, answer, _) = Table(), _data()
    lp = one_step_mean_field(model, prompt, answer, MASK)[0]
    (grad,) = torch.autograd.grad(lp.sum(), model.w)
    x = torch.cat([prompt, torch.full_like(answer, MASK)], 1)
    logits = model(x).double()
    logits[..., MASK] = float("-inf")
    ref = torch.log_softmax(logits, -1)[:, P:].gather(-1, answer[..., None]).squeeze(-1)
    (ref_grad,) = torch.autograd.grad(ref.sum(), model.w)
    assert torch.allclose(lp, ref, rtol=1e-5, atol=1e-5) and torch.allclose(grad, ref_grad.float(), atol=1e-5)
    # near-certain tokens keep their tiny log-probs (float32's relative precision, not its absolute one)
    top = logits[:, P:].argmax(-1)
    sure = one_step_mean_field(model, prompt, top, MASK)[0]
    exact = torch.log_softmax(logits, -1)[:, P:].gather(-1, top[..., None]).squeeze(-1)
    assert bool((sure < 0).all()) and torch.allclose(sure, exact, rtol=1e-4, atol=0)

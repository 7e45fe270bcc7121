"""Data for bench/routing_pays.py: generations, sandboxed scores, the small model's features and token counts,
sentence embeddings, and the measured overhead of a plain-prompt probe on answered queries.

Everything expensive is stored as it is made (generations and scores in the run store, features in npz files
keyed by what produced them), so a re-run computes nothing it already has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCORE_VERSION = "sandboxed-1"  # scores made under the OS sandbox, with the completion token checked


@dataclass
class Workload:
    """A task mix answered by both models over some splits (``splits``: split -> items per task)."""

    name: str
    tasks: list[str]
    splits: dict[str, int]
    max_tokens: int


@dataclass
class Items:
    """One row per item: its example, both models' measured usage and quality, and the small model's features."""

    tasks: list[str] = field(default_factory=list)
    examples: list[Any] = field(default_factory=list)
    small: list[dict[str, Any]] = field(default_factory=list)  # generation records (text, tokens, latency)
    large: list[dict[str, Any]] = field(default_factory=list)
    q_small: np.ndarray | None = None
    q_large: np.ndarray | None = None
    feats: dict[str, np.ndarray] = field(default_factory=dict)  # plain, instruction, embedding
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # token counts and latencies per item


def collect_workload(w: Workload, small: str, large: str, run_dir: Path, threads: int) -> None:
    """Both models answer every item (resumable; what is stored is reused)."""
    from thrifty.route.records.collect import CollectConfig, collect

    for split, n in w.splits.items():
        cfg = CollectConfig(models=[small, large], tasks=w.tasks, split=split, n_per_task=n,
                            max_tokens=w.max_tokens, n_threads=threads, run_dir=str(run_dir / f"collect_{w.name}"),
                            store=str(run_dir / "store.sqlite"), judge="")
        collect(cfg)


def load_items(w: Workload, small: str, large: str, run_dir: Path) -> Items:
    """Every item with both generations, scored under the sandbox (scores stored under SCORE_VERSION)."""
    from thrifty.core.store import RunStore, record_key
    from thrifty.llm.base import GenParams
    from thrifty.route.records.collect import generation_fields
    from thrifty.tasks.loader import load_task

    params = GenParams(max_tokens=w.max_tokens, temperature=0.0, seed=0)
    out = Items()
    qs, ql = [], []
    with RunStore(run_dir / "store.sqlite") as store:
        for spec in w.tasks:
            task = load_task(spec)
            seen = set()
            for split, n in w.splits.items():
                for ex in task.examples(split, n, 0):
                    if ex.id in seen:
                        continue
                    seen.add(ex.id)
                    gens, quality = [], []
                    for model in (small, large):
                        key = record_key("generation", generation_fields(model, params, ex))
                        gen = store.get("generation", key)
                        if gen is None:
                            raise SystemExit(f"{model} has no stored answer to {ex.id}; run the collect stage")
                        score, _ = store.get_or_compute(
                            "score", {"generation": key, "task": spec, "example": ex.id, "v": SCORE_VERSION},
                            lambda ex=ex, gen=gen, task=task: task.score(ex, gen["text"]),
                            {"model": model, "task": spec, "example": ex.id, "split": split})
                        gens.append(gen)
                        quality.append(1.0 if score["correct"] else 0.0)
                    out.tasks.append(spec)
                    out.examples.append(ex)
                    out.small.append(gens[0])
                    out.large.append(gens[1])
                    qs.append(quality[0])
                    ql.append(quality[1])
    out.q_small, out.q_large = np.array(qs), np.array(ql)
    return out


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def small_features(items: Items, small: str, run_dir: Path, name: str, threads: int) -> None:
    """Hidden states of the small model at the plain and the instruction position, with token counts and the
    time each read took; one npz per item under ``<run_dir>/features/`` (a re-run reads them back)."""
    from thrifty.core.progress import Progress
    from thrifty.core.types import content_hash
    from thrifty.llm.factory import load_model
    from thrifty.route.predictors.zero_shot import ZeroShotPredictor

    folder = run_dir / "features"
    folder.mkdir(parents=True, exist_ok=True)
    model = reader = None
    rows = []
    with Progress(len(items.examples), f"features {name}") as bar:
        for ex in items.examples:
            path = folder / f"{content_hash({'model': small, 'messages': ex.messages(), 'v': 1})[:20]}.npz"
            if not path.is_file():
                if model is None:
                    model = load_model(small, llamacpp={"n_threads": threads, "prefix_cache": True})
                    reader = ZeroShotPredictor(model)
                msgs = ex.messages()
                prompt = reader.prompt(msgs)
                t0 = time.perf_counter()
                plain = model.hidden_state(msgs)
                t1 = time.perf_counter()
                instr = model.hidden_state(prompt, assistant_prefix=reader.prefix)
                t2 = time.perf_counter()
                tp = model.tokenize(model.render(msgs))
                ti = np.array(model.tokenize(model.render(prompt, reader.prefix)))
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, plain=plain, instruction=instr, instr_tokens=ti, n_plain=len(tp),
                         n_common=_lcp(tp, ti.tolist()), t_plain=t1 - t0, t_instr=t2 - t1)
                tmp.replace(path)
            with np.load(path) as d:
                rows.append({k: d[k] for k in d.files})
            bar.advance()
    first = rows[0]["instr_tokens"].tolist()
    fixed = min(_lcp(first, r["instr_tokens"].tolist()) for r in rows[1:]) if len(rows) > 1 else len(first)
    items.feats.update(plain=np.stack([r["plain"] for r in rows]),
                       instruction=np.stack([r["instruction"] for r in rows]))
    items.counts.update({k: np.array([float(r[k]) for r in rows]) for k in ("n_plain", "n_common", "t_plain",
                                                                           "t_instr")})
    items.counts["n_instr"] = np.array([len(r["instr_tokens"]) for r in rows])
    items.counts["n_fixed"] = np.full(len(rows), fixed)  # the instruction prefix every query shares (cached)


def shared_prefix(items: Items, small: str, threads: int) -> None:
    """``counts["n_shared"]``: the prompt tokens every item's plain conversation shares (chat template and system
    message) — what any backend's prefix cache keeps between queries, priced as cached for every call."""
    from thrifty.llm.factory import load_model

    model = load_model(small, llamacpp={"n_threads": threads, "prefix_cache": True})
    toks = [model.tokenize(model.render(ex.messages())) for ex in items.examples]
    shared = min((_lcp(toks[0], t) for t in toks[1:]), default=len(toks[0]))
    items.counts["n_shared"] = np.full(len(toks), min(shared, min(len(t) for t in toks) - 1))


def embeddings(items: Items, run_dir: Path, name: str, threads: int) -> None:
    """all-MiniLM-L6-v2 embeddings of each item's last user message, its token counts and time per item."""
    from thrifty.core.types import content_hash
    from thrifty.llm.embed import load_embedder
    from thrifty.route.replay.baselines import last_user_text

    texts = [last_user_text(ex.messages()) for ex in items.examples]
    path = run_dir / f"embed_{name}_{content_hash(texts)[:12]}.npz"
    if path.is_file():
        with np.load(path) as d:
            items.feats["embedding"], items.counts["n_embed"], items.counts["t_embed"] = d["E"], d["n"], d["t"]
        return
    emb = load_embedder("all-minilm-l6-v2", n_threads=threads)
    t0 = time.perf_counter()
    E = emb.embed(texts)
    per = (time.perf_counter() - t0) / len(texts)
    n = np.array([min(len(emb.tokenizer(t)["input_ids"]), emb.max_length) for t in texts])
    items.feats["embedding"], items.counts["n_embed"], items.counts["t_embed"] = E, n, np.full(len(texts), per)
    np.savez(path, E=E, n=n, t=items.counts["t_embed"])


def probe_overhead(items: Items, small: str, n: int, max_tokens: int, threads: int, repeats: int = 3) -> dict[str, Any]:
    """What a plain-prompt probe adds to an answered query, on ``n`` items.

    End to end: a cold answer (no cache) against hidden state + answer on a context that keeps the probe's
    prefill — the answer must evaluate no prompt token again and give the same greedy text. Wall time: the probe
    replaces the answer's own prefill, so its cost is the hidden-state read minus a plain prefill of the same
    prompt (embeddings on vs off; each timed ``repeats`` times alternately from a cold cache, minimum taken) plus
    the classifier (timed on the real feature size), as a fraction of the plain answer's wall time."""
    from thrifty.llm.base import GenParams
    from thrifty.llm.factory import load_model
    from thrifty.route.predictors.probe import ProbeClassifier

    cold = load_model(small, llamacpp={"n_threads": threads, "prefix_cache": False})
    hot = load_model(small, llamacpp={"n_threads": threads, "prefix_cache": True})
    params, one = GenParams(max_tokens=max_tokens), GenParams(max_tokens=1)
    X = items.feats["plain"]
    clf = ProbeClassifier(l2=1.0).fit(X, np.where(items.q_small > 0.5, 2, 0))
    t0 = time.perf_counter()
    for _ in range(100):
        clf.predict_proba(X[:1])
    t_clf = (time.perf_counter() - t0) / 100
    rows = []
    for ex in items.examples[:n]:
        msgs = ex.messages()
        hot.chat([{"role": "user", "content": "warm-up: say hi"}], one)  # another prompt cached
        plain = cold.chat(msgs, params)
        hot.hidden_state(msgs)
        answer = hot.chat(msgs, params)
        t_read, t_prefill = [], []
        for _ in range(repeats):
            t1 = time.perf_counter()
            cold.hidden_state(msgs)
            t_read.append(time.perf_counter() - t1)
            t_prefill.append(cold.chat(msgs, one).latency_s)  # prefill + one greedy token, no embeddings
        rows.append({"t_plain": plain.latency_s, "t_read": min(t_read), "t_prefill": min(t_prefill),
                     "tokens_in": answer.tokens_in, "cached": answer.cached_tokens,
                     "plain_uncached": plain.tokens_in - plain.cached_tokens, "same_text": answer.text == plain.text})
    t_plain = sum(r["t_plain"] for r in rows)
    added = sum(r["t_read"] - r["t_prefill"] + t_clf for r in rows)
    # the probe's read is the answer's prefill: an answered query's uncached prompt tokens are the read (the
    # plain prompt) plus the answer's own uncached tokens, against the plain answer's
    extra = sum(r["tokens_in"] + (r["tokens_in"] - r["cached"]) - r["plain_uncached"] for r in rows)
    return {"n": len(rows), "wall_frac": added / t_plain, "extra_uncached_prompt_tokens": int(extra),
            "t_plain_answers_s": t_plain, "t_added_s": added, "t_classifier_s": t_clf,
            "same_text": sum(r["same_text"] for r in rows), "rows": rows}


def answer_features(items: Items, small: str, run_dir: Path, name: str, threads: int) -> None:
    """What the small model's own answer says about itself, for answer-then-verify: the log-probability of each
    answer token (teacher-forced, the same steps as generating it) and the hidden state at the answer's last
    token. A deployed cascade reads both while it answers (the log-probs come with generation, the hidden state
    costs one more token on the answer's cached context); here they are recomputed from the stored answers. One
    npz per item under ``<run_dir>/features_answer/``; also times the hidden-state read on the cached context and
    records the prompt tokens it evaluated again."""
    from thrifty.core.progress import Progress
    from thrifty.core.types import content_hash
    from thrifty.llm.factory import load_model

    folder = run_dir / "features_answer"
    folder.mkdir(parents=True, exist_ok=True)
    model = None
    rows = []
    with Progress(len(items.examples), f"answer features {name}") as bar:
        for ex, gen in zip(items.examples, items.small, strict=True):
            msgs, text = ex.messages(), gen["text"]
            path = folder / f"{content_hash({'model': small, 'messages': msgs, 'text': text, 'v': 1})[:20]}.npz"
            if not path.is_file():
                if model is None:
                    model = load_model(small, llamacpp={"n_threads": threads, "prefix_cache": True})
                lp = np.array(model.token_logprobs(msgs, text) if text else [], dtype=np.float64)
                t0 = time.perf_counter()
                h = model.hidden_state(msgs, assistant_prefix=text)
                t_read = time.perf_counter() - t0
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, lp=lp, h=h, t_read=t_read)
                tmp.replace(path)
            with np.load(path) as d:
                rows.append({k: d[k] for k in d.files})
            bar.advance()
    items.feats["answer_hidden"] = np.stack([r["h"] for r in rows])
    items.feats["answer_stats"] = np.stack([logprob_stats(r["lp"]) for r in rows])
    items.counts["t_verify"] = np.array([float(r["t_read"]) for r in rows])


def logprob_stats(lp: np.ndarray) -> np.ndarray:
    """Summary of an answer's token log-probabilities (Chow-style confidence): mean, minimum, mean of the 10 %
    least likely tokens, the share of tokens below p = 0.5, and log length."""
    if lp.size == 0:
        return np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    low = np.sort(lp)[: max(1, lp.size // 10)]
    return np.array([lp.mean(), lp.min(), low.mean(), float((lp < np.log(0.5)).mean()), np.log1p(lp.size)])


__all__ = ["SCORE_VERSION", "Items", "Workload", "answer_features", "collect_workload", "embeddings", "load_items",
           "logprob_stats", "probe_overhead", "shared_prefix", "small_features"]

"""The silhouette stem keeps which shape had which colour by construction (each colour slot's shape features see
that colour's pixels only); the k-means start of the colour slots; the query-first order of the compressor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.colour_init import distinct_colours, kmeans, nearest_centre_logits
from thrifty.video.compressor import CompressorConfig, SilhouetteStem, TinyCompressor
from thrifty.video.diagnose import swap_probe, two_sprite_segment
from thrifty.video.qa_vocab import WordVocab
from thrifty.video.synth import BACKGROUNDS, COLOURS


def _hard_slots(stem: SilhouetteStem) -> None:
    """Colour slots = nearest of red, blue and the grey background, sharpened until the shares are 0/1."""
    centres = np.array([COLOURS["red"], COLOURS["blue"], BACKGROUNDS["grey"]]) / 255.0 - 0.5
    w, b = nearest_centre_logits(centres, 200.0)
    with torch.no_grad():
        stem.assign.weight.copy_(torch.from_numpy(w).float()[:, :, None, None])
        stem.assign.bias.copy_(torch.from_numpy(b).float())


def _frames(seg: torch.Tensor) -> torch.Tensor:
    return seg[0].permute(0, 3, 1, 2).float() / 255.0 - 0.5


def test_a_colour_slots_features_see_only_that_colours_pixels():
    stem = SilhouetteStem(3, 2, None).eval()
    _hard_slots(stem)
    with torch.no_grad():
        a = stem(_frames(two_sprite_segment(("square", "red"), ("circle", "blue"))))
        b = stem(_frames(two_sprite_segment(("square", "red"), ("triangle", "blue"))))
        c = stem(_frames(two_sprite_segment(("circle", "red"), ("circle", "blue"))))
    red, blue = slice(0, 4), slice(4, 8)  # 2c = 4 channels per slot
    torch.testing.assert_close(a[:, red], b[:, red])  # the blue sprite changed shape: red's features did not move
    assert not torch.allclose(a[:, blue], b[:, blue])
    torch.testing.assert_close(a[:, blue], c[:, blue])  # the red sprite changed shape: blue's did not move
    assert not torch.allclose(a[:, red], c[:, red])
    assert a.shape == (8, 3 * 4, 8, 8)


def test_swapping_two_sprites_colours_changes_the_silhouette_stems_tokens():
    cfg = CompressorConfig(d_model=16, n_layers=1, n_heads=2, n_memory=2, channels=2, stem_norm=False,
                           stem="silhouette", colour_slots=3)
    comp = TinyCompressor(cfg, WordVocab(), torch.Generator().manual_seed(0))
    _hard_slots(comp.stem)
    assert swap_probe(comp, ("square", "circle"), ("red", "blue"))["visual_distance"] > 0.05


def test_distinct_colours_count_each_occupied_bin_once():
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    frames[0, 0, 0] = (255, 0, 0)  # one red pixel among 31 black ones
    frames[1, 1, 1] = (250, 10, 5)  # same 16-level bin as the red
    out = distinct_colours(frames, 16)
    np.testing.assert_allclose(out, np.array([[8, 8, 8], [248, 8, 8]]) / 255.0 - 0.5)
    with pytest.raises(ConfigError):
        distinct_colours(np.zeros((4, 4)), 16)


def test_kmeans_finds_well_separated_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    x = np.concatenate([c + 0.01 * rng.standard_normal((20, 3)) for c in true])
    centres = kmeans(x, 4, np.random.default_rng(1))
    matched = np.sort(((centres[:, None] - true[None]) ** 2).sum(-1).argmin(1))
    np.testing.assert_array_equal(matched, np.arange(4))
    np.testing.assert_allclose(np.sort(centres, axis=0), np.sort(true, axis=0), atol=0.01)
    with pytest.raises(ConfigError):
        kmeans(x[:3], 4, rng)


def test_kmeans_agrees_with_scikit_learn():
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(3)
    x = np.concatenate([c + 0.05 * rng.standard_normal((30, 2)) for c in ((0, 0), (2, 0), (0, 2))])
    ours = kmeans(x, 3, np.random.default_rng(0))
    theirs = cluster.KMeans(3, n_init=10, random_state=0).fit(x).cluster_centers_
    np.testing.assert_allclose(np.sort(ours, axis=0), np.sort(theirs, axis=0), atol=1e-6)


def test_nearest_centre_logits_pick_the_nearest_centre_by_brute_force():
    rng = np.random.default_rng(0)
    centres, x = rng.uniform(-0.5, 0.5, (7, 3)), rng.uniform(-0.5, 0.5, (200, 3))
    w, b = nearest_centre_logits(centres, 3.0)
    brute = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal((x @ w.T + b).argmax(1), brute)
    with pytest.raises(ConfigError):
        nearest_centre_logits(centres, 0.0)


def test_kmeans_slot_start_finds_every_sprite_colour():
    from thrifty.video.train import TempoTrainConfig, build_models, init_colour_slots

    cfg = TempoTrainConfig(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4, channels=2,
                           batch_size=4, stem="silhouette", stem_norm=False, slot_init="kmeans", slot_sharpness=40.0)
    comp, _ = build_models(cfg)
    init_colour_slots(cfg, comp)
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255.0 - 0.5
    with torch.no_grad():
        shares = comp.stem.masks(palette.T[None, :, :, None])[0, :, :, 0]  # (K, 6)
    slots = shares.argmax(0)
    assert len(set(slots.tolist())) == len(COLOURS) and bool((shares.amax(0) > 0.9).all())
    with pytest.raises(ConfigError, match="slot_init"):
        dataclasses.replace(cfg, slot_init="palette")


def test_query_first_changes_the_order_and_keeps_head_truncation():
    cfg = CompressorConfig(d_model=16, n_layers=2, n_heads=2, n_memory=4, channels=4, query_first=True)
    words = WordVocab()
    comp = TinyCompressor(cfg, words, torch.Generator().manual_seed(0)).eval()
    frames = torch.randint(0, 256, (2, 8, 32, 32, 3), dtype=torch.uint8)
    q1 = torch.tensor([words.encode_padded("What colour is the star?", 16)] * 2)
    q2 = torch.tensor([words.encode_padded("What colour is the square?", 16)] * 2)
    with torch.no_grad():
        full, head = comp(frames, q1), comp(frames, q1, n_memory=2)
        other = comp(frames, q2)
    torch.testing.assert_close(full.memory[:, :2], head.memory)
    torch.testing.assert_close(full.relevance_logit, head.relevance_logit)
    assert not torch.allclose(full.memory, other.memory)
    tempo = TinyCompressor(dataclasses.replace(cfg, query_first=False), words).eval()
    tempo.load_state_dict(comp.state_dict())
    with torch.no_grad():
        assert not torch.allclose(tempo(frames, q1).memory, full.memory)  # same weights, other order

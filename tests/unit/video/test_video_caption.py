"""Caption targets of the visual stem: they agree with the pixels the frames actually show."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.video.caption import background_ids, caption_classes, segment_rows, sprite_map, token_labels
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES, TASKS, make_video

N_SPRITE = len(SHAPES) * len(COLOURS)


def test_classes_are_every_sprite_kind_then_every_background():
    cls = caption_classes()
    assert len(cls) == len(set(cls)) == N_SPRITE + len(BACKGROUNDS)
    assert cls[0] == f"{next(iter(COLOURS))} {SHAPES[0]}" and cls[-1] == f"background {list(BACKGROUNDS)[-1]}"


def test_segment_rows_repeat_the_last_frame_and_cut_long_segments():
    rows = segment_rows([np.array([0, 1, 2]), np.array([5, 6, 7, 8, 9])], 4)
    assert rows.tolist() == [[0, 1, 2, 2], [5, 6, 7, 8]]
    with pytest.raises(ConfigError, match="no frames"):
        segment_rows([np.array([], dtype=np.int64)], 4)


@pytest.mark.parametrize("task", TASKS)
def test_sprite_map_paints_exactly_the_sprite_pixels(task):
    v = make_video(3, task, 48)
    m = sprite_map(v)
    colours = np.array(list(COLOURS.values()), dtype=np.uint8)
    on = m >= 0
    want = colours[m[on] % len(COLOURS)]  # class = shape · |colours| + colour
    assert np.array_equal(v.frames[on], want)
    is_sprite_colour = (v.frames[..., None, :] == colours).all(-1).any(-1)
    assert np.array_equal(is_sprite_colour, on)  # backgrounds never take a sprite colour
    for e in v.events:  # events are painted last, so they are whole and carry their own class
        assert (m[e.start:e.stop, e.y + 3, e.x + 3] == SHAPES.index(e.shape) * len(COLOURS)
                + list(COLOURS).index(e.colour)).all()


@pytest.mark.parametrize(("tubelet", "grid"), [(2, 2), (2, 4), (1, 1)])
def test_token_labels_match_the_pixels_of_each_cell(tubelet, grid):
    v = make_video(11, "counting", 64)
    lab = token_labels(v, 8, tubelet, grid)
    s, cell = v.plan.n_segments, 32 // grid
    assert lab.shape == (s, 8 // tubelet * grid * grid, len(caption_classes()))
    frames = v.frames[segment_rows(v.plan.segments, 8)]  # (S, 8, 32, 32, 3)
    bg = background_ids(v)[segment_rows(v.plan.segments, 8)]
    for si in range(s):
        for t in range(8 // tubelet):
            for gy in range(grid):
                for gx in range(grid):
                    tok = lab[si, t * grid * grid + gy * grid + gx]
                    px = frames[si, t * tubelet:(t + 1) * tubelet, gy * cell:(gy + 1) * cell,
                                gx * cell:(gx + 1) * cell]
                    for ci, rgb in enumerate(COLOURS.values()):  # a colour shows ⇔ some sprite of it is labelled
                        assert (px == rgb).all(-1).any() == tok[ci:N_SPRITE:len(COLOURS)].any()
                    assert set(np.flatnonzero(tok[N_SPRITE:])) == set(bg[si, t * tubelet:(t + 1) * tubelet])


def test_token_labels_reject_a_grid_that_does_not_divide_the_frame():
    with pytest.raises(ConfigError, match="grid"):
        token_labels(make_video(0, "attribute", 48), 8, 2, 5)

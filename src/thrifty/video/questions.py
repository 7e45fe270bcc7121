"""The questions the tiny decoder can answer — the needle generator's six forms — read back from free text: a
query in one of those forms gives its question type and answer choices; anything else gives None, because a
closed-vocabulary decoder that picks among a question type's choices cannot answer free text.

Pure Python. The forms mirror ``video/synth.py``'s templates (a test parses every generated question back to its
type and choices); matching ignores case, extra spaces and a missing question mark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES

_SHAPE = "(" + "|".join(SHAPES) + ")"
_COLOUR = "(" + "|".join(COLOURS) + ")"
_THING = f"{_COLOUR} {_SHAPE}"
FORMS = {  # question type → pattern of the whole query (lower case, single spaces, no final "?")
    "attribute": f"what colou?r is the {_SHAPE}",
    "presence": f"is there an? {_THING}",
    "timing": f"when does the {_THING} appear",
    "order": f"which appears first:? the {_THING} or the {_THING}",
    "counting": f"how many times does the {_THING} appear",
    "global": "what is the dominant background colou?r",
}
EXAMPLES = ("What colour is the star?", "Is there a red cross?", "When does the blue circle appear?",
            "Which appears first: the red star or the green square?", "How many times does the cyan square appear?",
            "What is the dominant background colour?")


@dataclass(frozen=True)
class ParsedQuestion:
    task: str
    choices: tuple[str, ...]


def timing_choices(duration_s: float, bins: int = 4) -> tuple[str, ...]:
    """The timing question's choices: ``bins`` equal stretches of the video, e.g. ``0-32 s`` (as synth words them)."""
    if not duration_s > 0 or bins < 1:
        raise ConfigError(f"need a positive duration and bins >= 1, got {duration_s} and {bins}")
    return tuple(f"{a:g}-{b:g} s" for a, b in pairwise(np.linspace(0, duration_s, bins + 1)))


def parse_question(text: str, duration_s: float, time_bins: int = 4, max_count: int = 4) -> ParsedQuestion | None:
    """The question type and choices of ``text`` if it is one of the needle forms, else None."""
    q = " ".join(text.lower().split()).rstrip("?").strip()
    for task, pattern in FORMS.items():
        m = re.fullmatch(pattern, q)
        if m is None:
            continue
        if task == "attribute":
            choices: tuple[str, ...] = tuple(COLOURS)
        elif task == "presence":
            choices = ("yes", "no")
        elif task == "timing":
            choices = timing_choices(duration_s, time_bins)
        elif task == "order":
            first, second = f"{m[1]} {m[2]}", f"{m[3]} {m[4]}"
            if first == second:
                return None
            choices = (first, second)
        elif task == "counting":
            choices = tuple(str(i) for i in range(max_count + 1))
        else:
            choices = tuple(BACKGROUNDS)
        return ParsedQuestion(task, choices)
    return None

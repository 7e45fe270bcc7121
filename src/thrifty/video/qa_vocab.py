"""The closed vocabularies of the tiny video models: question words, answer classes and timestamp bins.

Pure Python. Question words come from the needle generator's templates (shapes, colours, background names and
the function words of the six question types) plus specials; the relevance probe's Yes/No pair is looked up by
name, never by number. Answers are classes over one canonical list: colours, yes/no, timing quarters
(``time0``…), the two order choices (``choice0``/``choice1``), counts and background colours; a question may
only be answered from its own choices. A segment's timestamp is a bin of its centre time over the duration. ``segment_answers`` asks the video's
question of each segment alone (the target of the compressor's segment-level answer loss).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from thrifty.core.errors import ConfigError
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES, NeedleVideo

SPECIALS = ("<pad>", "<unk>", "<relevant?>", "<answer>", "<video>")
FUNCTION_WORDS = ("what", "colour", "is", "the", "there", "a", "when", "does", "appear", "which", "appears",
                  "first", "or", "how", "many", "times", "dominant", "background", "yes", "no")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class WordVocab:
    """Question words ⇄ ids; unknown words map to ``<unk>``."""

    words: tuple[str, ...] = field(default_factory=lambda: tuple(dict.fromkeys(
        (*SPECIALS, *FUNCTION_WORDS, *SHAPES, *COLOURS, *BACKGROUNDS))))

    def __post_init__(self) -> None:
        if len(set(self.words)) != len(self.words):
            raise ConfigError("vocabulary words must be unique")
        for w in ("<pad>", "<unk>", "<relevant?>", "<answer>", "<video>", "yes", "no"):
            if w not in self.words:
                raise ConfigError(f"vocabulary lacks {w!r}")

    @property
    def size(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        try:
            return self.words.index(word)
        except ValueError:
            return self.words.index("<unk>")

    @property
    def pad(self) -> int:
        return self.id("<pad>")

    def encode(self, text: str) -> list[int]:
        """Lower-cased alphabetic words of ``text`` as ids (punctuation dropped)."""
        return [self.id(w) for w in _WORD.findall(text.lower())]

    def encode_padded(self, text: str, length: int) -> list[int]:
        """``encode`` left-padded (or cut from the left) to exactly ``length`` ids."""
        ids = self.encode(text)[-length:]
        return [self.pad] * (length - len(ids)) + ids


def _answer_list(max_count: int = 4, time_bins: int = 4) -> tuple[str, ...]:
    return tuple(dict.fromkeys(("none", *COLOURS, "yes", "no", *(f"time{i}" for i in range(time_bins)), "choice0",
                                "choice1", *(str(i) for i in range(max_count + 1)), *BACKGROUNDS)))


@dataclass(frozen=True)
class AnswerVocab:
    """Answer classes; ``label`` maps a video's answer to its class, ``allowed`` gives its choices' classes."""

    names: tuple[str, ...] = field(default_factory=_answer_list)

    @property
    def size(self) -> int:
        return len(self.names)

    def _canonical(self, video: NeedleVideo, choice: str) -> str:
        if video.task == "timing":
            return f"time{video.choices.index(choice)}"
        if video.task == "order":
            return f"choice{video.choices.index(choice)}"
        return choice

    def label(self, video: NeedleVideo) -> int:
        name = self._canonical(video, video.answer)
        if name not in self.names:
            raise ConfigError(f"answer {video.answer!r} of a {video.task} question is not in the answer vocabulary")
        return self.names.index(name)

    def allowed(self, video: NeedleVideo) -> list[int]:
        """Classes of the question's choices (the decoder answers only among them)."""
        return [self.names.index(self._canonical(video, c)) for c in video.choices]

    def text(self, video: NeedleVideo, cls: int) -> str:
        """The answer string of class ``cls`` for this video (a choice as the question words it)."""
        name = self.names[cls]
        for c in video.choices:
            if self._canonical(video, c) == name:
                return c
        return name


def timestamp_bins(seconds, duration_s: float, n_bins: int) -> list[int]:
    """Bin of each segment's centre time t over the video: min(⌊t / duration · n_bins⌋, n_bins − 1)."""
    if not (duration_s > 0 and n_bins >= 1):
        raise ConfigError(f"need a positive duration and n_bins >= 1, got {duration_s} and {n_bins}")
    return [min(max(math.floor(float(t) / duration_s * n_bins), 0), n_bins - 1) for t in seconds]


def segment_answers(video: NeedleVideo, answers: AnswerVocab | None = None) -> list[int]:
    """The question asked of each segment alone, as answer classes: attribute → the queried shape's colour or
    ``none``; presence and timing → ``yes`` when the needle shows in the segment, else ``no``; order → which
    needle shows (``choice0``/``choice1``, the earlier when both) or ``none``; counting → needle events that show;
    global → the background colour of most of the segment's frames."""
    answers = answers or AnswerVocab()
    out = []
    for seg in video.plan.segments:
        frames = set(int(f) for f in seg)
        shown = [e for e in video.events if e.role == "needle" and frames & set(range(e.start, e.stop))]
        if video.task == "attribute":
            name = shown[0].colour if shown else "none"
        elif video.task in ("presence", "timing"):
            name = "yes" if shown else "no"
        elif video.task == "order":
            name = f"choice{video.choices.index(min(shown, key=lambda e: e.start).name)}" if shown else "none"
        elif video.task == "counting":
            name = str(min(len(shown), len(video.choices) - 1))
        else:
            votes = [c for c, a, b in video.background for f in seg if a <= f < b]
            name = max(set(votes), key=votes.count)
        out.append(answers.names.index(name))
    return out

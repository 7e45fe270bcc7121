"""judge: LLM rubric judges (joint/isolated, reference-guided, mischievous), verifier judges, parsing, caching.

Public API::

    from thrifty.judge import make_judge, JUDGES, Grade, LABELS, LABEL_VALUE
    judge = make_judge("rubric", model=chat_model)          # or "rubric_isolated", "reference", ...
    grades = judge.grade(query, {"small": text_a, "large": text_b}, reference=None)
    grades["small"].label                                    # "great" | "ok" | "bad" | "unparsed"
"""

from thrifty.judge.base import (
    GRADE_LABELS,
    ISOLATED,
    JOINT,
    LABEL_INDEX,
    LABEL_VALUE,
    LABELS,
    MODES,
    UNPARSED,
    Grade,
    Judge,
    label_value,
)
from thrifty.judge.cache import CachedJudge, grade_fields
from thrifty.judge.factory import JUDGES, make_judge
from thrifty.judge.parse import SCHEMA_VERSION, GradeParseError, parse_grades
from thrifty.judge.rubric import GENERIC, MISCHIEVOUS, RUBRICS, Rubric, rubric_hash
from thrifty.judge.rubric_judge import RubricJudge
from thrifty.judge.verifier import VerifierJudge, label_for_score

__all__ = [
    "GENERIC", "GRADE_LABELS", "ISOLATED", "JOINT", "JUDGES", "LABELS", "LABEL_INDEX", "LABEL_VALUE",
    "MISCHIEVOUS", "MODES", "RUBRICS", "SCHEMA_VERSION", "UNPARSED", "CachedJudge", "Grade", "GradeParseError",
    "Judge", "Rubric", "RubricJudge", "VerifierJudge", "grade_fields", "label_for_score", "label_value",
    "make_judge", "parse_grades", "rubric_hash",
]

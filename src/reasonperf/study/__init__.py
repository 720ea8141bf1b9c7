"""Studies: a matrix of runs from one YAML spec, run unattended, resumable, reported.

``plan_study(path, profile=..., limit=..., out=...)`` loads, checks and expands a spec;
``run_study(plan)`` runs the cells not done yet and writes ``study.json`` and
``report.html`` into the study's output folder.
"""

from reasonperf.study.expand import Cell, EngineGroup, StudyPlan, plan_study
from reasonperf.study.runner import EngineSlots, StudyResult, run_study
from reasonperf.study.spec import StudySpec, load_study

__all__ = [
    "Cell",
    "EngineGroup",
    "EngineSlots",
    "StudyPlan",
    "StudyResult",
    "StudySpec",
    "load_study",
    "plan_study",
    "run_study",
]

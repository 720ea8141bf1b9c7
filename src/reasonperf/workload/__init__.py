"""Workloads (what is asked) and arrival processes (when it is sent).

``load_workload`` gives the problems of a named benchmark, a generated workload or a local
file; ``make_arrival`` gives the send schedule. Prompt templates live in ``prompts``.
"""

from reasonperf.workload.arrivals import ARRIVALS, Arrival, make_arrival
from reasonperf.workload.datasets import DATASETS, load_workload, parse_field_map

__all__ = [
    "ARRIVALS",
    "DATASETS",
    "Arrival",
    "load_workload",
    "make_arrival",
    "parse_field_map",
]

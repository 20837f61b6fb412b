"""GLUE tasks: loading (official TSV layout or the hub) and official metrics."""
from .glue import TASKS, GlueExample, TaskSpec, get_task, load_split
from .metrics import compute_metrics

__all__ = ["TASKS", "GlueExample", "TaskSpec", "get_task", "load_split", "compute_metrics"]

"""Runners: each hosts a firmware image and returns raw measurements (a RunRecord).

A runner implements :class:`harness.runners.base.Runner`; ``RUNNERS`` maps the
names users pass to ``--runner`` to factories.
"""

from harness.runners.base import RunJob, RunRecord, Runner

__all__ = ["RunJob", "RunRecord", "Runner"]

"""Reports from result rows: terminal (rich), MLPerf-Tiny-shaped CSV, Markdown, HTML.

Reports are computed from result rows (JSON lines), never from logs. pandas
starts here: :func:`load_report` reads row files into a DataFrame, and every
format module (``terminal``, ``mlperf_csv``, ``markdown``, ``html_page``)
renders a :class:`Report`.
"""

from harness.report.load import KEY, Report, default_inputs, load_report

__all__ = ["KEY", "Report", "default_inputs", "load_report"]

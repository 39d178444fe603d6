"""Compliance monitoring: cameras → time windows in a database → debounced alerts (``maskwatch monitor``).

``windows`` cuts frames into per-camera windows, ``alerts`` holds the rules, their debounce and the
notifier, ``metrics`` the Prometheus side, ``runner`` joins them (threads, worker processes or Ray tasks);
the database schema is :mod:`maskwatch.apps.store`.
"""

from maskwatch.apps.monitor.alerts import DEFAULT_RULES, Rule, RuleEngine, load_rules
from maskwatch.apps.monitor.runner import MonitorSummary, monitor

__all__ = ["DEFAULT_RULES", "MonitorSummary", "Rule", "RuleEngine", "load_rules", "monitor"]

"""The controller tests' fixtures, defined in controller_helpers.py (a module name of its
own, so tests import its helpers whichever other conftest pytest loaded)."""

from controller_helpers import cluster, prometheus_url, record_api_calls

__all__ = ["cluster", "prometheus_url", "record_api_calls"]

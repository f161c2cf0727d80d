"""Reading measurements from Prometheus: a provider's `MetricQueries` in, a `Measurement` out.

Both queries of a measurement (value and request count), and every measurement of one
analysis, are evaluated at the same instant `at`, so canary and stable are compared over the
very same window. What a query *returns* is judged later (judge.py): here an empty result
becomes value None, a failed or ambiguous query a Measurement with `error` set. Only an
unreachable Prometheus is raised, as an InfraError, since then nothing can be measured.
"""

import ast
import json
import re
from datetime import datetime
from typing import Any

import requests
import structlog
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from rollout.errors import InfraError
from rollout.metrics.base import Measurement, MetricQueries, Role

log = structlog.get_logger(__name__)

TIMEOUT_S = 10
# Two quick retries on connection trouble and 502-504; the client's default (three, with
# 1-2-4 s back-off) would make a dead Prometheus take ~7 s to report.
RETRY = Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504))


_BODY = re.compile(r"\((b'.*')\)$", re.DOTALL)


class QueryError(Exception):
    """Prometheus answered, but not with one usable number (bad query, several series)."""


class PrometheusReader:
    """Runs instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout_s: int = TIMEOUT_S):
        self.url = url.rstrip("/")
        self._client = PrometheusConnect(url=self.url, retry=RETRY, timeout=timeout_s)

    def measure(self, metric: str, role: Role, queries: MetricQueries, at: datetime) -> Measurement:
        """Measure one metric of one subset at `at`; query problems end up in `error`."""
        try:
            value = self.scalar(queries.value, at)
            count = self.scalar(queries.requests, at)
        except QueryError as exc:
            log.warning("prometheus.query_failed", metric=metric, role=str(role), error=str(exc))
            return Measurement(metric, role, None, None, queries, at, error=str(exc))
        log.debug("prometheus.measured", metric=metric, role=str(role), value=value, requests=count)
        return Measurement(metric, role, value, count, queries, at)

    def scalar(self, query: str, at: datetime) -> float | None:
        """The single number `query` yields at `at`; None when the result is empty."""
        result = self._query(query, at)
        if not result:
            return None
        if len(result) > 1:
            raise QueryError(f"query returned {len(result)} series where one was expected")
        return _sample_value(result[0])

    def _query(self, query: str, at: datetime) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self._client.custom_query(
                query, params={"time": f"{at.timestamp():.3f}"}
            )
        except PrometheusApiClientException as exc:
            raise QueryError(_api_error(exc)) from exc
        except requests.RequestException as exc:
            raise InfraError(f"Prometheus at {self.url} is unreachable: {_short(exc)}") from exc
        return result


def _sample_value(sample: dict[str, Any]) -> float:
    """The float of one instant-vector sample; Prometheus writes NaN/+Inf as strings."""
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise QueryError(f"unexpected sample {sample!r}") from exc


def _api_error(exc: PrometheusApiClientException) -> str:
    """Prometheus' own error text (e.g. a PromQL parse error) out of the client's message,
    `HTTP Status Code 400 (b'{...json...}')`, which wraps the response body as a bytes repr."""
    message = str(exc)
    found = _BODY.search(message)
    try:
        body = json.loads(ast.literal_eval(found.group(1))) if found else {}
        return f"{body['errorType']}: {body['error']}"
    except (ValueError, SyntaxError, TypeError, KeyError):
        return message


def _short(exc: requests.RequestException) -> str:
    """A one-line reason: 'connection refused', 'timed out', else the exception's name."""
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.RetryError):
        return "it kept answering 5xx"
    return type(exc).__name__

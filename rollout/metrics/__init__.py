"""Metric providers: a metric spec plus a query context in, PromQL and a Measurement out."""

"""Instrumentation the spines use: Prometheus metrics, masking of patient identifiers, the logging
context (correlation ids, JSON lines).

Must not: import the views (gateway/monitoring, gateway/api) or the spines; they import this.
"""

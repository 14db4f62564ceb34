"""Prometheus exporter for Captain Data runs."""

__version__ = "0.1.0"

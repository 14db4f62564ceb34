"""Content negotiation for /metrics: which format and whether gzip (the families are in families.py)."""

from __future__ import annotations

import math

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def negotiate(accept: str, accept_encoding: str) -> tuple[bool, bool]:
    """(OpenMetrics?, gzip?) for a request's Accept and Accept-Encoding headers."""
    return "application/openmetrics-text" in accept, accepts_gzip(accept_encoding)


def accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip()
            if quality.startswith("q="):
                try:
                    return not math.isclose(float(quality[2:]), 0.0)
                except ValueError:
                    return True
            return True
    return False

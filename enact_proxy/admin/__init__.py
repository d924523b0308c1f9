"""The admin listener (SPEC §8): the console, the JSON API the CLI uses, /metrics, /healthz, /readyz."""

from enact_proxy.admin.metrics import Metrics
from enact_proxy.admin.tokens import AdminTokens

__all__ = ["AdminTokens", "Metrics"]

"""cello-rollout: progressive delivery for Kubernetes + Istio services."""

__version__ = "0.1.0"

"""pdp: a policy decision point with signed bundles, a sidecar and a control plane."""

__version__ = "0.1.0"

"""Moving traffic: the Istio router that sets the canary/stable weights of a VirtualService.

`istio` holds the router (`IstioRouter`, `Split`, `WeightChange`); `schema` checks objects
against Istio's own CRD schema before anything is written.
"""

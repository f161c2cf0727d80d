"""Notifications: Slack, CloudEvents webhooks and Kubernetes Events, off the decision path.

`events` builds the typed event from a transition or a check; `slack`, `webhook` and
`kube_events` render it; `delivery` queues and retries; `config` decides which events go
where and reads the secrets; `notifier` is what the driver calls.
"""

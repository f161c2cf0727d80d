"""Building a Kubernetes API client from --kubeconfig/--context or the in-cluster config."""

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from rollout.errors import InputError


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for the given kubeconfig/context, or in-cluster config when neither is given.

    Falls back to the default kubeconfig ($KUBECONFIG, ~/.kube/config) outside a cluster, as
    kubectl does.
    """
    try:
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config()
                return client.ApiClient()
            except ConfigException:
                pass
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        return client.ApiClient(configuration)
    except (ConfigException, OSError) as exc:
        where = kubeconfig or "the default kubeconfig"
        raise InputError(f"cannot load Kubernetes config from {where}: {exc}") from exc

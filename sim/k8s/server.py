"""`KubeTwin`: the SIMULATED Kubernetes API server (plus its Machine Config Server).

Starts an aiohttp HTTPS server with a twin CA (`sim.pki`) that the official `kubernetes` client
and kubectl use through `state_dir/kubeconfig`; wires the store, the API semantics, the HTTP
handlers, authentication (tokens, ServiceAccount JWTs, client certificates), authorization (Node
+ RBAC with the default cluster roles), the stand-in controllers (OVN subnets, CSR signer,
ServiceAccounts, disruption budgets and, unless `kube_controllers=False`, node lifecycle,
scheduler, the kubelets' pod handling, Deployments, ReplicaSets, DaemonSets, garbage collection;
`node_monitor_grace_seconds`, `pod_start_seconds`, `pod_stop_seconds` set their timings) and the
MCS listener. Used by the twin tests, `sim.twin.Twin` / `python -m sim up`, and `sim.k8s.bench`.
Never used by the product.
"""

from __future__ import annotations

import base64
import secrets
import ssl
from pathlib import Path

import yaml
from aiohttp import web

from sim.k8s.admission_policy import AdmissionPolicies
from sim.k8s.api import Api
from sim.k8s.auth import (
    BOOTSTRAP_GROUPS,
    BOOTSTRAP_NAMESPACE,
    BOOTSTRAP_SA,
    BOOTSTRAP_USER,
    INTERNAL,
    Authenticator,
    Identity,
)
from sim.k8s.authz import Authorizer
from sim.k8s.controllers import Controllers, ControllerSettings
from sim.k8s.faults import Faults
from sim.k8s.handlers import AuditRecord, Handlers
from sim.k8s.mcs import (
    MachineConfigServer,
    close_connections,
    kubelet_timings,
    worker_ignition,
)
from sim.k8s.policy import default_objects
from sim.k8s.requests import RequestCounts
from sim.k8s.resources import Registry, ResourceType, machine_api_crds
from sim.k8s.serviceaccounts import ServiceAccountController
from sim.k8s.store import Store
from sim.k8s.tokens import ServiceAccountTokens
from sim.pki import CertificateAuthority

DEFAULT_NAMESPACES = (
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "openshift-machine-api",
    "openshift-machine-config-operator",
    "winfleet",
)


def _server_ssl(ca: CertificateAuthority, state_dir: Path, host: str) -> ssl.SSLContext:
    cert, key = ca.issue_server_cert(("localhost",), tuple({"127.0.0.1", host}))
    (state_dir / "apiserver.crt").write_bytes(cert)
    key_path = state_dir / "apiserver.key"
    key_path.write_bytes(key)
    key_path.chmod(0o600)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(state_dir / "apiserver.crt", key_path)
    ctx.load_verify_locations(cadata=ca.ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class KubeTwin:
    """A simulated kube-apiserver; `await KubeTwin(dir).start()`, then use `.kubeconfig_path`."""

    def __init__(
        self,
        state_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mcs_port: int = 0,
        event_window: int = 10_000,
        bookmark_interval: float = 30.0,
        ovn_delay: float = 0.05,
        ca: CertificateAuthority | None = None,
        kube_controllers: bool = True,
        node_monitor_grace_seconds: float = 40.0,
        pod_start_seconds: float = 1.0,
        pod_stop_seconds: float = 0.5,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host, self._port, self._mcs_port = host, port, mcs_port
        self.ca = ca or CertificateAuthority("winfleet-sim-kube-ca")
        self.store = Store(event_window)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.faults = Faults()
        self.requests = RequestCounts()  # per user, verb and resource (apiserver_request_total)
        self._authn = Authenticator()
        self.admin_token = self._authn.admin_token
        self.bootstrap_token = self._authn.bootstrap_token
        self.authz = Authorizer(self.store)
        self.api.admission = self.authz.admit
        self.api.policies = AdmissionPolicies(
            self.store, lambda ns: self.store.get("namespaces", ns, group="")
        )
        self.tokens = ServiceAccountTokens(self.store)
        self._authn.add_verifier(self.tokens.verify)
        self.controllers = Controllers(
            self.api,
            self.ca,
            ovn_delay,
            ControllerSettings(
                kube_controllers=kube_controllers,
                node_monitor_grace_seconds=node_monitor_grace_seconds,
                pod_start_seconds=pod_start_seconds,
                pod_stop_seconds=pod_stop_seconds,
            ),
        )
        self.service_accounts = ServiceAccountController(self.api)
        self.handlers = Handlers(
            self.api,
            self._authn,
            self.faults,
            lambda: self.url,
            bookmark_interval,
            self.authz,
            self.tokens,
            self.requests,
        )
        # what the MCS serves in kubelet.conf: kubelet timings that fit the grace period
        self.kubelet_config = kubelet_timings(node_monitor_grace_seconds)
        self._runner: web.AppRunner | None = None
        self._mcs: MachineConfigServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def mcs_url(self) -> str:
        assert self._mcs is not None, "KubeTwin not started"
        return f"https://{self.host}:{self._mcs.port}/config/worker"

    @property
    def audit(self) -> list[AuditRecord]:
        """Every resource request so far, oldest first (user, verb, resource, name, code), as
        kube-apiserver's audit log at level Metadata would show them."""
        return list(self.handlers.audit)

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.crt"

    def _seed(self) -> None:
        ns_rt = self.registry.get("", "v1", "namespaces")
        crd_rt = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert isinstance(ns_rt, ResourceType) and isinstance(crd_rt, ResourceType)
        for ns in DEFAULT_NAMESPACES:
            self.api.create(ns_rt, "", {"metadata": {"name": ns}}, INTERNAL)
        for crd in machine_api_crds():
            self.api.create(crd_rt, "", crd, INTERNAL)
        for plural, obj in default_objects():
            rt = self.registry.get("rbac.authorization.k8s.io", "v1", plural)
            assert rt is not None
            self.api.create(rt, "", obj, INTERNAL, manager="kube-apiserver")
        sa_rt = self.registry.get("", "v1", "serviceaccounts")
        assert sa_rt is not None
        bootstrapper = self.api.create(
            sa_rt, BOOTSTRAP_NAMESPACE, {"metadata": {"name": BOOTSTRAP_SA}}, INTERNAL
        )
        # the bootstrap token is that account's long-lived (legacy Secret) token
        self._authn.add_token(
            self.bootstrap_token,
            Identity(BOOTSTRAP_USER, BOOTSTRAP_GROUPS, bootstrapper["metadata"]["uid"]),
        )

    def issue_token(self, user: str, groups: tuple[str, ...] = ()) -> str:
        """A new static bearer token for `user` (groups + system:authenticated), like an entry
        of kube-apiserver's --token-auth-file; RBAC decides what it may do."""
        token = secrets.token_urlsafe(32)
        self._authn.add_token(token, Identity(user, (*groups, "system:authenticated")))
        return token

    def service_account_token(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> str:
        """A bound token for ServiceAccount `namespace/name`, minted through the TokenRequest
        API exactly as `kubectl create token` gets one (the account must exist)."""
        spec = {"spec": {"expirationSeconds": expiration_seconds}}
        return str(self.tokens.request(namespace, name, spec)["status"]["token"])

    def kubeconfig_for_token(self, token: str, path: Path, user: str = "token-user") -> Path:
        """A kubeconfig at `path` that authenticates with `token` (e.g. a ServiceAccount's)."""
        return self.write_kubeconfig(path, user=user, token=token)

    def write_kubeconfig(
        self, path: Path | None = None, user: str = "admin", token: str | None = None
    ) -> Path:
        """Write a kubeconfig for `token` (default: the admin token)."""
        path = path or self.kubeconfig_path
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "sim",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": f"{user}@sim", "context": {"cluster": "sim", "user": user}}],
            "current-context": f"{user}@sim",
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path

    async def start(self) -> KubeTwin:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca.write(self.state_dir)
        ctx = _server_ssl(self.ca, self.state_dir, self.host)
        self._seed()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        self.handlers.install(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port, ssl_context=ctx).start()
        self.port = self._runner.addresses[0][1]
        self.controllers.start()
        self.service_accounts.start()
        self._mcs = MachineConfigServer(
            self.host,
            self._mcs_port,
            ctx,
            worker_ignition(self.url, self.ca.ca_pem, self.bootstrap_token, self.kubelet_config),
        )
        await self._mcs.start()
        self.write_kubeconfig()
        return self

    async def stop(self) -> None:
        self.handlers.close_watches()
        self.service_accounts.stop()
        await self.controllers.stop()
        if self._mcs is not None:
            await self._mcs.stop()
        if self._runner is not None:
            await close_connections(self._runner)
            self._runner = None

//! What a backend author implements.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ApiEndpoint, Capabilities, Change, Cluster, Diagnostics, Error, Machine, RenderedFile};

/// A backend: its config section and state as types, and the contract's four calls.
///
/// The crate reads [`Backend::Config`] from the cluster's `backends.<name>` section, decodes
/// [`Backend::State`] from what `apply` returned last time, runs [`Backend::validate`] before
/// `plan` and `apply` (refusing them on errors), and encodes what `apply` returns.
pub trait Backend {
    /// The backend's section of the cluster config (`backends.<name>`), as JSON would read
    /// it: use `#[serde(rename_all = "camelCase")]` for the config's key style. An absent
    /// section reads as `{}`.
    type Config: DeserializeOwned;
    /// What the backend remembers between runs (what it created). `Default` is the state of
    /// the first run, and of a run whose state was lost or unreadable.
    type State: Serialize + DeserializeOwned + Default;

    /// The backend's name, as in `backends.<name>` and `--backend <name>`.
    const NAME: &'static str;
    /// One line for `hacluster plugins list`.
    const DESCRIPTION: &'static str;
    /// What the backend can provide (a VIP, a cloud load balancer, several hosts, data disks).
    const SUPPORTS: Capabilities;
    /// Where the user finds the section's fields, shown when it cannot be read.
    const CONFIG_HELP: &'static str;

    /// Completes the config with what the cluster says, or refuses it with
    /// [`Error::InvalidInput`] (shown as a diagnostic of the section). The default keeps it.
    fn configure(config: Self::Config, _cluster: &Cluster) -> Result<Self::Config, Error> {
        Ok(config)
    }

    /// Checks of the cluster and the config beyond what the core checks, with paths in the
    /// config's dotted form (`backends.<name>.machines[2].hostKey`). No I/O.
    fn validate(_cluster: &Cluster, _config: &Self::Config, _out: &mut Diagnostics) {}

    /// What `apply` would change. Change nothing.
    fn plan(cluster: &Cluster, config: &Self::Config, prior: Self::State) -> Result<Vec<Change>, Error>;

    /// Converges the infrastructure to `cluster`: find what exists, create what is missing,
    /// [`checkpoint`](crate::checkpoint()) after each create. Idempotent.
    fn apply(cluster: &Cluster, config: &Self::Config, prior: Self::State) -> Result<Provisioned<Self::State>, Error>;

    /// Removes everything the cluster owns, also when `state` is the default (lost): find
    /// resources by name or tag.
    fn destroy(cluster: &Cluster, config: &Self::Config, state: Self::State) -> Result<(), Error>;
}

/// A backend that puts files of its own on the machines (a load balancer's configuration, a
/// seed), shown by `hacluster plan --out DIR`. Register it with `register_backend!(X, files)`.
pub trait RendersFiles: Backend {
    /// The files `apply` would put on the machines, rendered exactly as `apply` renders them,
    /// from `cluster` and `prior` alone: nothing is granted in this call, and the nodes'
    /// private host keys in `cluster` are placeholders.
    fn files(cluster: &Cluster, config: &Self::Config, prior: Self::State) -> Result<Vec<RenderedFile>, Error>;
}

/// A backend whose API endpoint (a cloud load balancer, a balancer with an API) can be told to
/// stop sending connections to a control plane while its API server restarts, and to send
/// them again. Register it with `register_backend!(X, endpoint)` (or `X, files, endpoint`).
///
/// Both calls get `apply`'s capabilities, must be idempotent, and return what they did, for
/// the operator.
pub trait DrainsEndpoint: Backend {
    /// Stops new connections through the endpoint to control plane `node`, and returns once
    /// the balancer sends it none (its connections finished, or its deregistration delay
    /// passed).
    fn drain_member(cluster: &Cluster, config: &Self::Config, state: Self::State, node: &str) -> Result<String, Error>;
    /// Lets the endpoint send connections to `node` again, and returns once the balancer
    /// considers it healthy.
    fn restore_member(
        cluster: &Cluster,
        config: &Self::Config,
        state: Self::State,
        node: &str,
    ) -> Result<String, Error>;
}

/// What `apply` built.
#[derive(Debug, Clone)]
pub struct Provisioned<S> {
    /// One machine per node of the cluster, each with the SSH host key hacluster pins.
    pub machines: Vec<Machine>,
    /// Where the Kubernetes API is reachable.
    pub endpoint: ApiEndpoint,
    /// Handed back as the prior state next time.
    pub state: S,
}

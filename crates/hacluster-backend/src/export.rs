//! The contract's exports on top of a [`Backend`]: what [`register_backend!`](crate::register_backend)
//! expands to calls of. Not for direct use.

use crate::checkpoint::{decode, encode};
use crate::{
    Backend, Change, Cluster, Diagnostic, Diagnostics, DrainsEndpoint, Error, Infrastructure, NodeRole, PluginInfo,
    RenderedFile, RendersFiles,
};

/// `info`: `version` is the backend crate's, captured where the macro expands.
pub fn info<B: Backend>(version: &str) -> PluginInfo {
    PluginInfo {
        name: B::NAME.into(),
        version: version.into(),
        contract: crate::CONTRACT.into(),
        description: B::DESCRIPTION.into(),
        supports: B::SUPPORTS,
    }
}

/// The backend's config section, read and completed.
fn config<B: Backend>(cluster: &Cluster) -> Result<B::Config, Error> {
    let config =
        serde_json::from_str(&cluster.config).map_err(|e| Error::InvalidInput(format!("backends.{}: {e}", B::NAME)))?;
    B::configure(config, cluster)
}

fn check<B: Backend>(cluster: &Cluster) -> Result<(B::Config, Diagnostics), Error> {
    let config = config::<B>(cluster)?;
    let mut out = Diagnostics::default();
    B::validate(cluster, &config, &mut out);
    Ok((config, out))
}

/// The config, refused when validation finds errors (`plan` and `apply` never run on them).
fn checked<B: Backend>(cluster: &Cluster) -> Result<B::Config, Error> {
    let (config, out) = check::<B>(cluster)?;
    match out.refusal() {
        Some(errors) => Err(Error::InvalidInput(errors)),
        None => Ok(config),
    }
}

/// `validate`: a section that cannot be read is one error at `backends.<name>`.
pub fn validate<B: Backend>(cluster: Cluster) -> Vec<Diagnostic> {
    match check::<B>(&cluster) {
        Ok((_, out)) => out.into_vec(),
        Err(Error::InvalidInput(message)) => {
            let mut out = Diagnostics::default();
            out.error(format!("backends.{}", B::NAME), message).help(B::CONFIG_HELP);
            out.into_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `plan`.
pub fn plan<B: Backend>(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
    let config = checked::<B>(&cluster)?;
    B::plan(&cluster, &config, decode(prior))
}

/// `apply`.
pub fn apply<B: Backend>(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
    let config = checked::<B>(&cluster)?;
    let done = B::apply(&cluster, &config, decode(prior))?;
    Ok(Infrastructure { machines: done.machines, endpoint: done.endpoint, state: encode(&done.state) })
}

/// `destroy`: not validated, so that a cluster whose config has since gone wrong can still go.
pub fn destroy<B: Backend>(cluster: Cluster, state: Option<Vec<u8>>) -> Result<(), Error> {
    let config = config::<B>(&cluster)?;
    B::destroy(&cluster, &config, decode(state))
}

/// `rendered-files`.
pub fn files<B: RendersFiles>(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Vec<RenderedFile>, Error> {
    let config = config::<B>(&cluster)?;
    B::files(&cluster, &config, decode(prior))
}

/// A control plane of `cluster` named `node`, or the error the host gets for another name.
fn control_plane(cluster: &Cluster, node: &str) -> Result<(), Error> {
    match cluster.nodes.iter().find(|n| n.name == node) {
        Some(n) if n.role == NodeRole::ControlPlane => Ok(()),
        Some(_) => Err(Error::InvalidInput(format!(
            "`{node}` is not a control plane: only control planes are endpoint members"
        ))),
        None => Err(Error::NotFound(format!("no node `{node}` in cluster `{}`", cluster.name))),
    }
}

/// `drain-member`: only for a control plane of the cluster.
pub fn drain_member<B: DrainsEndpoint>(
    cluster: Cluster,
    state: Option<Vec<u8>>,
    node: String,
) -> Result<String, Error> {
    let config = config::<B>(&cluster)?;
    control_plane(&cluster, &node)?;
    B::drain_member(&cluster, &config, decode(state), &node)
}

/// `restore-member`: only for a control plane of the cluster.
pub fn restore_member<B: DrainsEndpoint>(
    cluster: Cluster,
    state: Option<Vec<u8>>,
    node: String,
) -> Result<String, Error> {
    let config = config::<B>(&cluster)?;
    control_plane(&cluster, &node)?;
    B::restore_member(&cluster, &config, decode(state), &node)
}

/// Exports a [`Backend`](crate::Backend) as the component's `plugin` (world `backend`); with
/// `, files` also as its `files` (world `backend-with-files`, for a
/// [`RendersFiles`](crate::RendersFiles) backend); with `, endpoint` also as its `endpoint`
/// (world `backend-with-endpoint`, for a [`DrainsEndpoint`](crate::DrainsEndpoint) backend);
/// with `, files, endpoint` both. Once per component, at the crate's root.
///
/// ```ignore
/// hacluster_backend::register_backend!(Mine);
/// hacluster_backend::register_backend!(Mine, files);
/// hacluster_backend::register_backend!(Mine, endpoint);
/// hacluster_backend::register_backend!(Mine, files, endpoint);
/// ```
#[macro_export]
macro_rules! register_backend {
    ($backend:ty, files, endpoint) => {
        const _: () = {
            struct Export;
            $crate::__plugin_guest!(
                $backend,
                Export,
                $crate::bindings::with_files_and_endpoint::exports::hacluster::backend::plugin::Guest
            );
            $crate::__files_guest!(
                $backend,
                Export,
                $crate::bindings::with_files_and_endpoint::exports::hacluster::backend::files::Guest,
                $crate::bindings::with_files_and_endpoint::exports::hacluster::backend::files::RenderedFile
            );
            $crate::__endpoint_guest!(
                $backend,
                Export,
                $crate::bindings::with_files_and_endpoint::exports::hacluster::backend::endpoint::Guest
            );
    $crate::bindings::with_files_and_endpoint::export_backend_with_files_and_endpoint!(Export with_types_in $crate::bindings::with_files_and_endpoint);
        };
    };
    ($backend:ty, files) => {
        const _: () = {
            struct Export;
            $crate::__plugin_guest!(
                $backend,
                Export,
                $crate::bindings::with_files::exports::hacluster::backend::plugin::Guest
            );
            $crate::__files_guest!(
                $backend,
                Export,
                $crate::bindings::with_files::exports::hacluster::backend::files::Guest,
                $crate::RenderedFile
            );
    $crate::bindings::with_files::export_backend_with_files!(Export with_types_in $crate::bindings::with_files);
        };
    };
    ($backend:ty, endpoint) => {
        const _: () = {
            struct Export;
            $crate::__plugin_guest!(
                $backend,
                Export,
                $crate::bindings::with_endpoint::exports::hacluster::backend::plugin::Guest
            );
            $crate::__endpoint_guest!(
                $backend,
                Export,
                $crate::bindings::with_endpoint::exports::hacluster::backend::endpoint::Guest
            );
    $crate::bindings::with_endpoint::export_backend_with_endpoint!(Export with_types_in $crate::bindings::with_endpoint);
        };
    };
    ($backend:ty) => {
        const _: () = {
            struct Export;
            $crate::__plugin_guest!($backend, Export, $crate::bindings::exports::hacluster::backend::plugin::Guest);
    $crate::bindings::export_backend!(Export with_types_in $crate::bindings);
        };
    };
}

/// The `files` export of one world (its `RenderedFile` is the same record, generated once per
/// world), for [`register_backend!`](crate::register_backend).
#[doc(hidden)]
#[macro_export]
macro_rules! __files_guest {
    ($backend:ty, $export:ident, $guest:path, $file:path) => {
        impl $guest for $export {
            fn rendered_files(cluster: $crate::Cluster, prior: Option<Vec<u8>>) -> Result<Vec<$file>, $crate::Error> {
                // A struct literal takes an alias, not a macro's path.
                type File = $file;
                Ok($crate::export::files::<$backend>(cluster, prior)?
                    .into_iter()
                    .map(|f| File { node: f.node, name: f.name, destination: f.destination, content: f.content })
                    .collect())
            }
        }
    };
}

/// The `endpoint` export of one world, for [`register_backend!`](crate::register_backend).
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_guest {
    ($backend:ty, $export:ident, $guest:path) => {
        impl $guest for $export {
            fn drain_member(
                cluster: $crate::Cluster,
                state: Option<Vec<u8>>,
                node: String,
            ) -> Result<String, $crate::Error> {
                $crate::export::drain_member::<$backend>(cluster, state, node)
            }
            fn restore_member(
                cluster: $crate::Cluster,
                state: Option<Vec<u8>>,
                node: String,
            ) -> Result<String, $crate::Error> {
                $crate::export::restore_member::<$backend>(cluster, state, node)
            }
        }
    };
}

/// The `plugin` export of one world, for [`register_backend!`](crate::register_backend).
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_guest {
    ($backend:ty, $export:ident, $guest:path) => {
        impl $guest for $export {
            fn info() -> $crate::PluginInfo {
                $crate::export::info::<$backend>(env!("CARGO_PKG_VERSION"))
            }
            fn validate(cluster: $crate::Cluster) -> Vec<$crate::Diagnostic> {
                $crate::export::validate::<$backend>(cluster)
            }
            fn plan(cluster: $crate::Cluster, prior: Option<Vec<u8>>) -> Result<Vec<$crate::Change>, $crate::Error> {
                $crate::export::plan::<$backend>(cluster, prior)
            }
            fn apply(
                cluster: $crate::Cluster,
                prior: Option<Vec<u8>>,
            ) -> Result<$crate::Infrastructure, $crate::Error> {
                $crate::export::apply::<$backend>(cluster, prior)
            }
            fn destroy(cluster: $crate::Cluster, state: Option<Vec<u8>>) -> Result<(), $crate::Error> {
                $crate::export::destroy::<$backend>(cluster, state)
            }
        }
    };
}

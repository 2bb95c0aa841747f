//! Lists and watches the pods of this node into a [`SharedIndex`] (I/O).
//!
//! Only pods scheduled on this node are asked for (field selector `spec.nodeName=<node>`), so the
//! API server's load and the observer's memory stay per node. Errors (API server unreachable,
//! RBAC, an expired watch) are logged and retried with kube's default backoff (exponential, up to
//! 30 s, reset after a while of health); meanwhile processes are reported without Kubernetes
//! metadata, and the index keeps what it had.

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

use super::{Error, SharedIndex};

/// The client for `--kubernetes`: a kubeconfig, else the in-cluster service account.
pub async fn client() -> Result<Client, Error> {
    let config = kube::Config::infer().await?;
    Ok(Client::try_from(config)?)
}

/// The watcher's configuration: this node's pods only.
pub fn config(node: &str) -> watcher::Config {
    watcher::Config::default().fields(&format!("spec.nodeName={node}"))
}

/// Keeps `index` up to date with the pods of `node`; runs until the task is dropped.
pub async fn run(client: Client, node: String, index: SharedIndex) {
    let api: Api<Pod> = Api::all(client);
    let mut events = watcher(api, config(&node)).default_backoff().boxed();
    let mut healthy = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let listed = matches!(event, watcher::Event::InitDone);
                index.write().on_event(event);
                if listed && !healthy {
                    healthy = true;
                    tracing::info!(node, pods = index.read().len(), "kubernetes pods listed");
                }
            }
            Err(e) => {
                healthy = false;
                tracing::warn!(node, "watching the pods of this node: {e} (retrying)");
            }
        }
    }
    tracing::warn!(
        node,
        "the pod watch ended; Kubernetes metadata is no longer updated"
    );
}

/// Starts the watcher on the current tokio runtime.
pub fn spawn(client: Client, node: String, index: SharedIndex) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(client, node, index))
}

/// `--kubernetes` at start-up: the index of `node`'s pods, kept up to date from now on by a
/// watcher task on the current tokio runtime.
pub async fn start(node: Option<&str>) -> Result<SharedIndex, Error> {
    let node = node.filter(|n| !n.is_empty()).ok_or(Error::NoNodeName)?;
    let client = client().await?;
    let index = SharedIndex::default();
    spawn(client, node.to_owned(), index.clone());
    Ok(index)
}

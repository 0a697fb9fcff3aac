//! The run lock every mutating command of every plugin takes: a `coordination.k8s.io` Lease in
//! the Istio namespace, held while a run changes the cluster and renewed in the background. A
//! second run (of any plugin: moving a tag while namespaces move is as unsafe as two moves)
//! refuses and names the holder; a holder that died stops renewing and its lease expires, so
//! nothing needs cleaning by hand. Where the Istio namespace does not exist yet (a restore into
//! an empty cluster) there is no installation to guard and no lease is taken.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use crate::cli::DryRun;
use crate::cluster::Cluster;
use crate::error::{Error, Result};

pub const LEASE: &str = "kubectl-mesh-lock";
const DURATION_SECONDS: i32 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 5;

/// What a lease says about its holder, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub identity: String,
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    pub duration_seconds: i32,
}

impl Holder {
    fn of(lease: &Lease) -> Holder {
        let spec = lease.spec.clone().unwrap_or_default();
        Holder {
            identity: spec.holder_identity.unwrap_or_default(),
            acquired: spec.acquire_time.map(|t| t.0),
            renewed: spec.renew_time.map(|t| t.0),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(DURATION_SECONDS),
        }
    }

    /// Whether someone else still holds it at `now`.
    pub fn blocks(&self, me: &str, now: Timestamp) -> bool {
        if self.identity.is_empty() || self.identity == me {
            return false;
        }
        let last = self.renewed.or(self.acquired);
        last.is_some_and(|t| now.as_second() < t.as_second() + i64::from(self.duration_seconds))
    }
}

/// A held lock; [`Lock::release`] gives it up (dropped without that, it expires on its own).
struct Lock {
    held: Option<Held>,
}

struct Held {
    cluster: Cluster,
    identity: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Who runs us, as the apiserver sees it (SelfSubjectReview, which every authenticated user may
/// ask); the kubeconfig's user name if it cannot say.
async fn whoami(cluster: &Cluster) -> String {
    let api: Api<SelfSubjectReview> = Api::all(cluster.client());
    match api.create(&PostParams::default(), &SelfSubjectReview::default()).await {
        Ok(review) => review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default(),
        Err(_) => cluster.target.user.clone(),
    }
}

/// How a holder is named: who, where, which process and plugin.
fn identity(user: &str, host: &str, pid: u32, plugin: &str) -> String {
    format!("{user} on {host} (pid {pid}) via kubectl-{plugin}")
}

fn lease(cluster: &Cluster, identity: &str, resource_version: Option<String>, acquired: Timestamp) -> Lease {
    let now = Timestamp::now();
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            namespace: Some(cluster.istio_namespace.clone()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), format!("kubectl-{}", cluster.plugin))].into()),
            resource_version,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Takes the lock or refuses naming who holds it. A conflicting write (someone else took or
/// renewed it in between) is retried on a fresh read.
async fn acquire(cluster: &Cluster, user: &str) -> Result<Lock> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let identity = identity(user, host.trim(), std::process::id(), cluster.plugin);
    let api: Api<Lease> = Api::namespaced(cluster.client(), &cluster.istio_namespace);
    let what = format!("take the run lock (lease {}/{LEASE})", cluster.istio_namespace);
    for _ in 0..ATTEMPTS {
        let current = cluster.call(&what, api.get_opt(LEASE)).await?;
        let written = match &current {
            None => api.create(&PostParams::default(), &lease(cluster, &identity, None, Timestamp::now())).await,
            Some(existing) => {
                let holder = Holder::of(existing);
                if holder.blocks(&identity, Timestamp::now()) {
                    return Err(Error::refused(
                        format!(
                            "another run holds the lock: {} (since {}, lease {}/{LEASE})",
                            holder.identity,
                            holder.acquired.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
                            cluster.istio_namespace
                        ),
                        format!(
                            "wait for it to finish; if it died, its lease expires {}s after its last renewal",
                            holder.duration_seconds
                        ),
                    ));
                }
                let replacement =
                    lease(cluster, &identity, existing.metadata.resource_version.clone(), Timestamp::now());
                api.replace(LEASE, &PostParams::default(), &replacement).await
            }
        };
        match written {
            Ok(_) => {
                let renewer = tokio::spawn(renew(cluster.clone(), identity.clone()));
                return Ok(Lock { held: Some(Held { cluster: cluster.clone(), identity, renewer }) });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 && current.is_none() => {
                // The Istio namespace itself is missing: nothing is installed to guard.
                return Ok(Lock { held: None });
            }
            Err(e) => return Err(cluster.classify(e, &what)),
        }
    }
    Err(Error::refused(format!("could not {what}: it kept changing under us"), "try again"))
}

/// Runs `change` under the lock, handing it who runs us (for journals), and gives the lock up
/// whatever the change's outcome.
pub async fn held<T>(cluster: &Cluster, change: impl AsyncFnOnce(&str) -> Result<T>) -> Result<T> {
    let user = whoami(cluster).await;
    let lock = acquire(cluster, &user).await?;
    let outcome = change(&user).await;
    let released = lock.release().await;
    let value = outcome?;
    released?;
    Ok(value)
}

/// [`held`] for a change that may be a dry run: a dry run (client or server) persists nothing,
/// so it runs without the lock and needs no right to it.
pub async fn guarded<T>(cluster: &Cluster, dry_run: DryRun, change: impl Future<Output = Result<T>>) -> Result<T> {
    if dry_run.is_dry() {
        return change.await;
    }
    held(cluster, async |_| change.await).await
}

/// Keeps the lease fresh while we hold it; stops when it is no longer ours.
async fn renew(cluster: Cluster, identity: String) {
    let api: Api<Lease> = Api::namespaced(cluster.client(), &cluster.istio_namespace);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let Ok(Some(current)) = api.get_opt(LEASE).await else { continue };
        let holder = Holder::of(&current);
        if holder.identity != identity {
            return;
        }
        let acquired = holder.acquired.unwrap_or_else(Timestamp::now);
        let fresh = lease(&cluster, &identity, current.metadata.resource_version.clone(), acquired);
        // A failed renewal (apiserver away, a conflict) is retried at the next tick.
        let _ = api.replace(LEASE, &PostParams::default(), &fresh).await;
    }
}

impl Lock {
    /// Gives the lock up: deletes the lease if it is still ours (a precondition on its
    /// resourceVersion makes sure of that).
    async fn release(self) -> Result<()> {
        let Some(held) = self.held else { return Ok(()) };
        held.renewer.abort();
        let api: Api<Lease> = Api::namespaced(held.cluster.client(), &held.cluster.istio_namespace);
        let what = format!("release the run lock (lease {}/{LEASE})", held.cluster.istio_namespace);
        for _ in 0..ATTEMPTS {
            let Some(current) = held.cluster.call(&what, api.get_opt(LEASE)).await? else { return Ok(()) };
            if Holder::of(&current).identity != held.identity {
                return Ok(());
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: current.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..Default::default()
            };
            match api.delete(LEASE, &params).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => continue,
                Err(e) => return Err(held.cluster.classify(e, &what)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_lease_blocks_others_until_it_expires() {
        let holder =
            Holder { identity: "alice".into(), acquired: Some(at(100)), renewed: Some(at(120)), duration_seconds: 15 };
        assert!(holder.blocks("bob", at(134)));
        assert!(!holder.blocks("bob", at(135)), "expired 15s after the last renewal");
        assert!(!holder.blocks("alice", at(130)), "our own lease");
        assert!(!Holder::default().blocks("bob", at(0)), "released");
    }

    #[test]
    fn a_holder_is_named_with_its_plugin() {
        assert_eq!(identity("alice", "laptop", 42, "revtag"), "alice on laptop (pid 42) via kubectl-revtag");
    }
}

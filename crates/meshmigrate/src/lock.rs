//! The run lock: a `coordination.k8s.io` Lease in the Istio namespace, held while a run changes
//! the cluster and renewed in the background. A second run refuses and names the holder; a
//! holder that died stops renewing and its lease expires, so nothing needs cleaning by hand.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use meshkit::cluster::Cluster;
use meshkit::{Error, Result};

pub const LEASE: &str = "meshmigrate-lock";
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

pub struct Lock {
    cluster: Cluster,
    identity: String,
    renewer: tokio::task::JoinHandle<()>,
}

fn lease(cluster: &Cluster, identity: &str, resource_version: Option<String>, acquired: Timestamp) -> Lease {
    let now = Timestamp::now();
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            namespace: Some(cluster.istio_namespace.clone()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "kubectl-meshmigrate".to_string())].into()),
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
pub async fn acquire(cluster: &Cluster, user: &str) -> Result<Lock> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let identity = format!("{user} on {} (pid {})", host.trim(), std::process::id());
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
                            "another meshmigrate run holds the lock: {} (since {}, lease {}/{LEASE})",
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
                return Ok(Lock { cluster: cluster.clone(), identity, renewer });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(cluster.classify(e, &what)),
        }
    }
    Err(Error::refused(format!("could not {what}: it kept changing under us"), "try again"))
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
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let api: Api<Lease> = Api::namespaced(self.cluster.client(), &self.cluster.istio_namespace);
        let what = format!("release the run lock (lease {}/{LEASE})", self.cluster.istio_namespace);
        for _ in 0..ATTEMPTS {
            let Some(current) = self.cluster.call(&what, api.get_opt(LEASE)).await? else { return Ok(()) };
            if Holder::of(&current).identity != self.identity {
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
                Err(e) => return Err(self.cluster.classify(e, &what)),
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
}

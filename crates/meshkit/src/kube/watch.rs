//! Watching objects as plain views (kube-rs `runtime::watcher`): one watcher per namespace for a
//! few namespaces, or one for the cluster filtered to them, each event mapped through a view
//! function at once (the object itself is not kept). A watcher relists after its history expired
//! (410 Gone); [`Mirror`] then replaces what that stream said before.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::Result;
use crate::cluster::Cluster;

/// One event of one stream, as a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// An object as it is now, by `namespace/name`.
    Upsert {
        stream: usize,
        key: String,
        view: T,
    },
    Remove {
        stream: usize,
        key: String,
    },
    /// The stream (re)lists: what it said before is replaced by what follows until `Ready`.
    Relist {
        stream: usize,
    },
    Ready {
        stream: usize,
    },
}

/// What the streams have said: the current views, and whether every stream has listed once.
#[derive(Debug, Clone)]
pub struct Mirror<T> {
    streams: usize,
    views: BTreeMap<(usize, String), T>,
    listing: BTreeSet<usize>,
    ready: BTreeSet<usize>,
}

impl<T: Clone> Mirror<T> {
    pub fn new(streams: usize) -> Mirror<T> {
        Mirror { streams, views: BTreeMap::new(), listing: BTreeSet::new(), ready: BTreeSet::new() }
    }

    pub fn apply(&mut self, change: Change<T>) {
        match change {
            Change::Upsert { stream, key, view } => {
                self.views.insert((stream, key), view);
            }
            Change::Remove { stream, key } => {
                self.views.remove(&(stream, key));
            }
            Change::Relist { stream } => {
                self.views.retain(|(s, _), _| *s != stream);
                self.listing.insert(stream);
            }
            Change::Ready { stream } => {
                self.listing.remove(&stream);
                self.ready.insert(stream);
            }
        }
    }

    /// A stream that can never list (forbidden) counts as listed, and empty.
    pub fn give_up(&mut self, stream: usize) {
        self.apply(Change::Relist { stream });
        self.apply(Change::Ready { stream });
    }

    /// Every stream has listed, and none is relisting.
    pub fn ready(&self) -> bool {
        self.ready.len() == self.streams && self.listing.is_empty()
    }

    pub fn views(&self) -> Vec<T> {
        self.views.values().cloned().collect()
    }
}

/// Streams of `K` in `namespaces` as views: one per namespace when there are at most
/// `per_namespace` of them, else one for the cluster, filtered. Streams are numbered from
/// `first`; `what` names the request in errors ("watch deployments").
pub fn watch<K, T>(
    cluster: &Cluster,
    namespaces: &[String],
    per_namespace: usize,
    first: usize,
    what: &str,
    view: fn(&K) -> T,
) -> Vec<BoxStream<'static, Result<Change<T>>>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Send + 'static,
{
    let apis: Vec<(Api<K>, Option<BTreeSet<String>>)> = if namespaces.len() <= per_namespace {
        namespaces.iter().map(|ns| (Api::namespaced(cluster.client(), ns), None)).collect()
    } else {
        vec![(Api::all(cluster.client()), Some(namespaces.iter().cloned().collect()))]
    };
    apis.into_iter()
        .enumerate()
        .map(|(i, (api, wanted))| {
            let stream = first + i;
            let cluster = cluster.clone();
            let what = what.to_string();
            let kept = move |o: &K| wanted.as_ref().is_none_or(|w| w.contains(&o.namespace().unwrap_or_default()));
            let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
            // An error reaches the consumer, which decides; polling again retries at once.
            watcher::watcher(api, watcher::Config::default())
                .map_err(move |e| cluster.classify(watch_error(e), &what))
                .try_filter_map(move |event| {
                    let change = match event {
                        watcher::Event::Init => Some(Change::Relist { stream }),
                        watcher::Event::InitDone => Some(Change::Ready { stream }),
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                            kept(&o).then(|| Change::Upsert { stream, key: key(&o), view: view(&o) })
                        }
                        watcher::Event::Delete(o) => kept(&o).then(|| Change::Remove { stream, key: key(&o) }),
                    };
                    futures::future::ready(Ok(change))
                })
                .boxed()
        })
        .collect()
}

/// A watcher's error as the client error it wraps, so that it is classified as any request's.
fn watch_error(e: watcher::Error) -> kube::Error {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        watcher::Error::WatchError(status) => kube::Error::Api(status),
        watcher::Error::NoResourceVersion => kube::Error::Api(Box::new(
            kube::core::Status::failure("no metadata.resourceVersion in watch result", "NoResourceVersion")
                .with_code(500),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_replaces_what_its_stream_said_and_readiness_waits_for_every_stream() {
        let mut mirror: Mirror<u32> = Mirror::new(2);
        let upsert = |stream, key: &str, view| Change::Upsert { stream, key: key.into(), view };
        mirror.apply(Change::Relist { stream: 0 });
        mirror.apply(upsert(0, "shop/web", 1));
        mirror.apply(upsert(0, "shop/api", 1));
        mirror.apply(Change::Ready { stream: 0 });
        assert!(!mirror.ready(), "stream 1 has not listed yet");
        mirror.give_up(1);
        assert!(mirror.ready());
        mirror.apply(upsert(0, "shop/web", 2));
        mirror.apply(Change::Remove { stream: 0, key: "shop/api".into() });
        assert_eq!(mirror.views(), [2]);
        // History expired: the stream lists again, and what it no longer lists is gone.
        mirror.apply(Change::Relist { stream: 0 });
        assert!(!mirror.ready(), "not ready while relisting");
        mirror.apply(upsert(0, "shop/db", 7));
        mirror.apply(Change::Ready { stream: 0 });
        assert_eq!((mirror.ready(), mirror.views()), (true, vec![7]));
    }
}

//! The physical floor of a read command: the same LIST requests it made, paginated the same way,
//! sent together, each response read to its last byte and never decoded — only the page's
//! `continue` token is picked out. `cargo xtask bench` runs it under `/usr/bin/time`, next to the
//! plugin, once asking for JSON and once for protobuf.
//!
//! `raw-list --encoding json|protobuf --page N LIST…`, each LIST `resource|group|version|namespace|selector`
//! (empty parts for none). KUBECONFIG says which cluster and user. Prints `bytes pages` on stdout.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures::future::try_join_all;
use http_body_util::BodyExt;
use meshkit::kube::protobuf;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

struct List {
    path: String,
    selector: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raw-list: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut encoding, mut page, mut lists) = (Encoding::Json, 500u32, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--encoding" => {
                encoding = match args.next().as_deref() {
                    Some("json") => Encoding::Json,
                    Some("protobuf") => Encoding::Protobuf,
                    other => bail!("--encoding takes json or protobuf, not {other:?}"),
                }
            }
            "--page" => page = args.next().context("--page needs a number")?.parse()?,
            spec => lists.push(parse_list(spec)?),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (bytes, pages) = runtime.block_on(async {
        // The plugins' own client (TCP_NODELAY), so that the floor pays no Nagle delay they do not.
        let client = meshkit::kube::client::build(kube::Config::infer().await?)?;
        let read = lists.iter().map(|list| read_list(&client, list, encoding, page));
        let totals = try_join_all(read).await?;
        Ok::<_, anyhow::Error>(totals.into_iter().fold((0, 0), |(b, p), (lb, lp)| (b + lb, p + lp)))
    })?;
    println!("{bytes} {pages}");
    Ok(())
}

fn parse_list(spec: &str) -> Result<List> {
    let parts: Vec<&str> = spec.split('|').collect();
    let [resource, group, version, namespace, selector] = parts.as_slice() else {
        bail!("a LIST is resource|group|version|namespace|selector, not {spec:?}");
    };
    let base = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let path = match *namespace {
        "" => format!("{base}/{resource}"),
        ns => format!("{base}/namespaces/{ns}/{resource}"),
    };
    Ok(List { path, selector: selector.to_string() })
}

/// Every page of one list: `(bytes, pages)`.
async fn read_list(client: &kube::Client, list: &List, encoding: Encoding, page: u32) -> Result<(u64, u64)> {
    let (mut bytes, mut pages, mut token) = (0u64, 0u64, String::new());
    loop {
        let mut query = format!("limit={page}");
        for (key, value) in [("labelSelector", &list.selector), ("continue", &token)] {
            if !value.is_empty() {
                query.push_str(&format!("&{key}={}", meshkit::kube::query_value(value)));
            }
        }
        // Custom resources have no protobuf form: the apiserver answers those in JSON.
        let accept = match encoding {
            Encoding::Json => "application/json",
            Encoding::Protobuf => protobuf::ACCEPT,
        };
        let request = http::Request::get(format!("{}?{query}", list.path))
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())?;
        let response = client.send(request.map(kube::client::Body::from)).await?;
        if !response.status().is_success() {
            bail!("GET {}: {}", list.path, response.status());
        }
        let body = response.into_body().collect().await?.to_bytes();
        bytes += body.len() as u64;
        pages += 1;
        token = match protobuf::object(&body) {
            Some(list) => protobuf::list_continue(list),
            None => json_continue(&body).unwrap_or_default(),
        };
        if token.is_empty() {
            return Ok((bytes, pages));
        }
    }
}

/// `metadata.continue` of a JSON list: the apiserver writes metadata before the items.
fn json_continue(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(4096)];
    let key = b"\"continue\":\"";
    let at = head.windows(key.len()).position(|w| w == key)? + key.len();
    let end = head[at..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&head[at..at + end]).into_owned())
}

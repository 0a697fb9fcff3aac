//! `BENCHMARKS.md` and `benchmarks.json`, from the measured rows.

use std::fmt::Write as _;
use std::fs;

use anyhow::Result;

use super::{Figures, Options, Row};

/// Where the generated table lives in `BENCHMARKS.md`; what is around it is kept.
pub const BEGIN: &str =
    "<!-- bench:begin (written by `cargo xtask bench`; numbers are from the machine that ran it) -->";
pub const END: &str = "<!-- bench:end -->";

/// The generated part of `BENCHMARKS.md`: how it was measured, and one row per command and size.
pub fn markdown(rows: &[Row], runs: usize) -> String {
    let mut out = format!(
        "{BEGIN}\n\
         Each command of ours runs against a synthetic mesh in the real test control plane (kube-apiserver and\n\
         etcd on loopback): two revisions, three tags, namespaces labelled four ways, ten injected pods of real\n\
         size (the pod real istiod injected on Tier C, managedFields and status included, about 12 KB in a list)\n\
         and two VirtualServices per namespace. **The floor is the same LIST requests** (read from the audit log\n\
         of our run), paginated alike and sent together, each response read to its last byte and not decoded\n\
         (`raw-list`, a process of its own): once as JSON, once as protobuf (custom resources have no protobuf\n\
         form and come as JSON in both). *kubectl* lists the same collections: what a user would otherwise run.\n\
         Times are the median of {runs} run(s) (min–max); memory is peak RSS (kubectl's adds up its processes);\n\
         requests are counted by the apiserver's audit log.\n\n\
         | command | namespaces / pods / CRs | ours | JSON floor | protobuf floor | ours ÷ protobuf floor | ours ÷ JSON floor | kubectl | istioctl | ours ÷ istioctl | requests (ours / floor / istioctl) | peak MiB (ours / JSON floor / protobuf floor / kubectl / istioctl) | MB read (JSON / protobuf) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let time = |f: &Figures| format!("{:.2}s ({:.2}–{:.2})", f.median_seconds, f.min_seconds, f.max_seconds);
    let or_dash = |f: Option<&Figures>, show: &dyn Fn(&Figures) -> String| f.map_or("–".into(), show);
    for row in rows {
        let (json, protobuf, kubectl) = (row.json_floor.as_ref(), row.protobuf_floor.as_ref(), row.kubectl.as_ref());
        let istioctl = row.istioctl.as_ref().map(|(_, f)| f);
        let against = |f: Option<&Figures>| {
            or_dash(f, &|f| {
                if f.median_seconds > 0.0 {
                    format!("{:.2}×", row.ours.median_seconds / f.median_seconds)
                } else {
                    "–".into()
                }
            })
        };
        let mib = |f: Option<&Figures>| or_dash(f, &|f| format!("{:.0}", f.peak_mib));
        let mb = |f: Option<&Figures>| or_dash(f, &|f| format!("{:.1}", f.bytes as f64 / 1e6));
        let _ = writeln!(
            out,
            "| {} | {} / {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {:.0} / {} / {} / {} / {} | {} / {} |",
            row.command,
            row.namespaces,
            row.pods,
            row.custom_resources,
            time(&row.ours),
            or_dash(json, &time),
            or_dash(protobuf, &time),
            against(protobuf),
            against(json),
            or_dash(kubectl, &time),
            row.istioctl.as_ref().map_or("–".into(), |(name, f)| format!("{} `{name}`", time(f))),
            against(istioctl),
            row.ours.requests,
            or_dash(protobuf, &|f| f.requests.to_string()),
            or_dash(istioctl, &|f| f.requests.to_string()),
            row.ours.peak_mib,
            mib(json),
            mib(protobuf),
            mib(kubectl),
            mib(istioctl),
            mb(json),
            mb(protobuf),
        );
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Writes `BENCHMARKS.md` (the generated part between [`BEGIN`] and [`END`], keeping what is
/// around it) and `benchmarks.json` into `out`.
pub fn write(rows: &[Row], options: &Options) -> Result<()> {
    fs::create_dir_all(&options.out)?;
    let path = options.out.join("BENCHMARKS.md");
    let fresh = markdown(rows, options.runs);
    let page = match fs::read_to_string(&path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(begin), Some(end)) => {
                format!("{}{fresh}{}", &old[..begin], &old[end + END.len()..].trim_start_matches('\n'))
            }
            _ => format!("# Benchmarks\n\n{fresh}"),
        },
        Err(_) => format!("# Benchmarks\n\n{fresh}"),
    };
    fs::write(path, page)?;
    fs::write(options.out.join("benchmarks.json"), serde_json::to_string_pretty(rows)? + "\n")?;
    Ok(())
}

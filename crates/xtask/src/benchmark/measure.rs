//! One measured process: wall time and peak memory from `/usr/bin/time -v`.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs `command` under `/usr/bin/time -v`: wall seconds and peak memory in MiB.
pub fn timed(command: &Command, allowed: &[i32]) -> Result<(f64, f64)> {
    let (seconds, mib, _) = timed_run(command, allowed, Stdio::null())?;
    Ok((seconds, mib))
}

/// As [`timed`], keeping what the command printed.
pub fn timed_output(command: &Command) -> Result<(f64, f64, String)> {
    timed_run(command, &[0], Stdio::piped())
}

fn timed_run(command: &Command, allowed: &[i32], stdout: Stdio) -> Result<(f64, f64, String)> {
    let report = tempfile::NamedTempFile::new()?;
    let program = command.get_program().to_owned();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.arg("-v").arg("-o").arg(report.path()).arg(&program).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    let started = Instant::now();
    let out = wrapped.stdout(stdout).stderr(Stdio::piped()).output().context("cannot run /usr/bin/time")?;
    let seconds = started.elapsed().as_secs_f64();
    let code = out.status.code().unwrap_or(-1);
    if !allowed.contains(&code) {
        bail!("{:?} exited {code}: {}", program, String::from_utf8_lossy(&out.stderr));
    }
    let text = fs::read_to_string(report.path())?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    Ok((seconds, kib / 1024.0, String::from_utf8_lossy(&out.stdout).into_owned()))
}

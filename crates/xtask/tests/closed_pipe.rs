//! `kubectl <plugin> --help | head -1`: a reader that goes away ends the output quietly, exit 0,
//! never a panic ("failed printing to stdout: Broken pipe").

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

const PLUGINS: &[&str] = &["revtag", "meshcheck", "meshmigrate", "meshbackup"];

fn assert_quiet(plugin: &str, output: std::process::Output, how: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{plugin} --help {how}: {:?}\n{stderr}", output.status);
    assert!(stderr.is_empty(), "{plugin} --help {how} wrote to stderr:\n{stderr}");
}

/// The pipe closed before the plugin writes a byte: every write fails, every time.
#[test]
fn help_into_a_pipe_already_closed() {
    for plugin in PLUGINS {
        for args in [&["--help"][..], &["help", "completion"][..], &["--version"][..]] {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let binary = common::built_binary(&format!("kubectl-{plugin}"));
            let output = Command::new(binary).args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
            assert_quiet(plugin, output, &format!("{args:?} into a closed pipe"));
        }
    }
}

/// `| head -1`, a hundred times each: the reader takes one line and goes, racing the writer.
#[test]
fn help_piped_to_head_a_hundred_times() {
    for plugin in PLUGINS {
        let binary = common::built_binary(&format!("kubectl-{plugin}"));
        for _ in 0..100 {
            let mut child =
                Command::new(&binary).arg("--help").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let mut first = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
            assert!(!first.is_empty(), "{plugin}: no first line");
            assert_quiet(plugin, child.wait_with_output().unwrap(), "| head -1");
        }
    }
}

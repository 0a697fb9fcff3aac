//! Progress of long work, on stderr: plain log lines (one per event) when stderr is not a
//! terminal, so that logs and CI output stay readable.

use std::io::IsTerminal;

pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    terminal: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        Progress { label, total, done: 0, terminal: std::io::stderr().is_terminal() }
    }

    /// Something happened that does not complete an item.
    pub fn note(&mut self, message: &str) {
        self.line(message);
    }

    /// One item is finished.
    pub fn done(&mut self, message: &str) {
        self.done += 1;
        self.line(message);
    }

    pub fn finish(&mut self) {
        if self.total > 0 && self.terminal {
            eprintln!("kubectl-meshmigrate: {}: {}/{} finished", self.label, self.done, self.total);
        }
    }

    fn line(&self, message: &str) {
        eprintln!("kubectl-meshmigrate: [{}/{} {}] {message}", self.done, self.total, self.label);
    }
}

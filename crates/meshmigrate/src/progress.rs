//! Progress of long work, on stderr: a bar on a terminal (indicatif), plain log lines otherwise,
//! so that logs and CI output stay readable and greppable.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        let bar = (total > 0 && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label);
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Progress { label, total, done: 0, bar }
    }

    /// Something happened that does not complete an item.
    pub fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => self.line(message),
        }
    }

    /// One item is finished.
    pub fn done(&mut self, message: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(message.to_string());
            }
            None => self.line(message),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            crate::spec::SPEC.note(format_args!("{}: {}/{} finished", self.label, self.done, self.total));
        }
    }

    fn line(&self, message: &str) {
        crate::spec::SPEC.note(format_args!("[{}/{} {}] {message}", self.done, self.total, self.label));
    }
}

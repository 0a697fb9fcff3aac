//! Asking before a change that deserves it: only on a terminal, and `--yes` answers for scripts.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};

/// Whether a change went ahead after asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
}

/// Asks `question` unless `assume_yes`. Without a terminal on stdin and stderr there is nobody to
/// ask: that is an error ([`Error::NotConfirmed`], exit 6) so that scripts notice nothing happened.
pub fn confirm(question: &str, assume_yes: bool) -> Result<Answer> {
    if assume_yes {
        return Ok(Answer::Yes);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::NotConfirmed {
            what: question.trim_end_matches('?').to_string(),
            hint: "run it on a terminal to be asked, or pass --yes".into(),
        });
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(parse_answer(&line))
}

/// [`confirm`], with a no as [`Error::NotConfirmed`]: the change does not go ahead.
pub fn ask(question: &str, assume_yes: bool) -> Result<()> {
    match confirm(question, assume_yes)? {
        Answer::Yes => Ok(()),
        Answer::No => {
            Err(Error::NotConfirmed { what: question.trim_end_matches('?').to_string(), hint: String::new() })
        }
    }
}

fn parse_answer(line: &str) -> Answer {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        _ => Answer::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_means_yes() {
        assert_eq!(parse_answer("y\n"), Answer::Yes);
        assert_eq!(parse_answer(" YES "), Answer::Yes);
        for no in ["", "\n", "n", "no", "yep", "sure"] {
            assert_eq!(parse_answer(no), Answer::No, "{no:?}");
        }
    }

    #[test]
    fn assume_yes_skips_the_question() {
        assert_eq!(confirm("Proceed?", true).unwrap(), Answer::Yes);
    }

    #[test]
    fn without_a_terminal_nothing_is_confirmed() {
        // Tests never run with a terminal on stdin.
        if !std::io::stdin().is_terminal() {
            let err = confirm("Move the default revision?", false).unwrap_err();
            assert_eq!(err.exit() as u8, 6);
            assert_eq!(err.to_string(), "not confirmed: Move the default revision; nothing was changed");
        }
    }
}

//! Kubernetes label-selector syntax, checked before any request (as `labels.Parse` in
//! apimachinery reads it): requirements separated by commas, each `key`, `!key`, `key=value`,
//! `key==value`, `key!=value`, `key in (v,…)`, `key notin (v,…)`, `key>N` or `key<N`.

/// Where and why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// 0-based character position.
    pub position: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Op(&'static str),
    Comma,
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let (token, width) = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ',' => (Token::Comma, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            _ if two == "==" => (Token::Op("=="), 2),
            _ if two == "!=" => (Token::Op("!="), 2),
            '=' => (Token::Op("="), 1),
            '!' => (Token::Op("!"), 1),
            '>' => (Token::Op(">"), 1),
            '<' => (Token::Op("<"), 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !",()=!<>".contains(chars[i]) {
                    i += 1;
                }
                out.push((start, Token::Word(chars[start..i].iter().collect())));
                continue;
            }
        };
        out.push((i, token));
        i += width;
    }
    Ok(out)
}

fn is_name(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn check_key(key: &str, at: usize) -> Result<(), SelectorError> {
    let fail = |reason: String| Err(SelectorError { position: at, reason });
    match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return fail(format!("the prefix of key \"{key}\" must be a DNS subdomain"));
            }
            if !is_name(name, 63) {
                return fail(format!(
                    "the name of key \"{key}\" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                ));
            }
        }
        None if !is_name(key, 63) => {
            return fail(format!(
                "key \"{key}\" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ));
        }
        None => {}
    }
    Ok(())
}

fn check_value(value: &str, at: usize) -> Result<(), SelectorError> {
    if value.is_empty() || is_name(value, 63) {
        return Ok(());
    }
    Err(SelectorError {
        position: at,
        reason: format!(
            "value \"{value}\" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ),
    })
}

/// Checks `text`; an empty selector selects everything and is valid.
pub fn validate(text: &str) -> Result<(), SelectorError> {
    let tokens = tokens(text)?;
    let end = text.chars().count();
    let mut i = 0;
    let at = |i: usize| tokens.get(i).map_or(end, |(p, _)| *p);
    let expected = |i: usize, what: &str| -> SelectorError {
        let found = match tokens.get(i) {
            None => "the end".to_string(),
            Some((_, Token::Word(w))) => format!("\"{w}\""),
            Some((_, Token::Op(o))) => format!("'{o}'"),
            Some((_, Token::Comma)) => "','".into(),
            Some((_, Token::Open)) => "'('".into(),
            Some((_, Token::Close)) => "')'".into(),
        };
        SelectorError { position: at(i), reason: format!("expected {what}, found {found}") }
    };
    if tokens.is_empty() {
        return Ok(());
    }
    loop {
        // One requirement.
        let negated = matches!(tokens.get(i), Some((_, Token::Op("!"))));
        if negated {
            i += 1;
        }
        let Some((key_at, Token::Word(key))) = tokens.get(i) else { return Err(expected(i, "a label key")) };
        check_key(key, *key_at)?;
        i += 1;
        if !negated {
            match tokens.get(i) {
                Some((_, Token::Op(op))) if ["=", "==", "!="].contains(op) => {
                    i += 1;
                    match tokens.get(i) {
                        Some((value_at, Token::Word(value))) => {
                            check_value(value, *value_at)?;
                            i += 1;
                        }
                        // `key=` selects an empty value.
                        None | Some((_, Token::Comma)) => {}
                        _ => return Err(expected(i, "a value")),
                    }
                }
                Some((_, Token::Op(op))) if [">", "<"].contains(op) => {
                    i += 1;
                    match tokens.get(i) {
                        Some((_, Token::Word(n))) if n.parse::<i64>().is_ok() => i += 1,
                        _ => return Err(expected(i, "an integer")),
                    }
                }
                Some((_, Token::Word(w))) if w == "in" || w == "notin" => {
                    i += 1;
                    if !matches!(tokens.get(i), Some((_, Token::Open))) {
                        return Err(expected(i, "'('"));
                    }
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            Some((value_at, Token::Word(value))) => {
                                check_value(value, *value_at)?;
                                i += 1;
                            }
                            // `in ()` and `in (a,)` are accepted as apimachinery accepts them.
                            Some((_, Token::Comma | Token::Close)) => {}
                            _ => return Err(expected(i, "a value, ',' or ')'")),
                        }
                        match tokens.get(i) {
                            Some((_, Token::Comma)) => i += 1,
                            Some((_, Token::Close)) => {
                                i += 1;
                                break;
                            }
                            _ => return Err(expected(i, "',' or ')'")),
                        }
                    }
                }
                None | Some((_, Token::Comma)) => {}
                _ => return Err(expected(i, "'=', '!=', 'in', 'notin' or ','")),
            }
        }
        match tokens.get(i) {
            None => return Ok(()),
            Some((_, Token::Comma)) => i += 1,
            _ => return Err(expected(i, "',' or the end")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_kubernetes_accepts() {
        for ok in [
            "",
            "team=shop",
            "team==shop,env!=prod",
            "istio.io/rev",
            "!istio-injection",
            "env in (prod, staging),tier notin (db)",
            "team=",
            "a in ()",
            "replicas>3",
            "example.com/role = front_end.v2",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_with_the_position() {
        let err = validate("a in (").unwrap_err();
        assert_eq!(err.position, 6);
        assert!(err.reason.contains("expected a value, ',' or ')', found the end"), "{err:?}");
        assert_eq!(validate("a b").unwrap_err().position, 2);
        assert_eq!(validate("=x").unwrap_err().position, 0);
        assert!(validate("Bad_Prefix/x=1").unwrap_err().reason.contains("DNS subdomain"));
        assert!(validate("team=-shop").unwrap_err().reason.contains("value \"-shop\""));
        assert!(validate("a=b,").unwrap_err().reason.contains("a label key"));
        assert!(validate("x>y").unwrap_err().reason.contains("an integer"));
        assert!(validate(&format!("{}=1", "k".repeat(64))).is_err());
    }
}

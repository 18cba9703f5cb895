//! Splitting the kernel command line into parameters.
//!
//! Words are separated by whitespace; a value may be double-quoted to hold spaces
//! (`key="a b"`). A word without `=` is a flag. Typing the values is the caller's job.

use std::path::Path;

/// One command-line parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The part before the first `=`.
    pub key: String,
    /// The part after it; `None` for a bare flag.
    pub value: Option<String>,
}

/// Reads and splits `/proc/cmdline` (or another file holding a command line).
pub fn read(path: &Path) -> std::io::Result<Vec<Param>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// Splits a command line into parameters, in order.
pub fn parse(line: &str) -> Vec<Param> {
    words(line).into_iter().map(param).collect()
}

fn param(word: String) -> Param {
    match word.split_once('=') {
        Some((key, value)) => Param {
            key: key.to_string(),
            value: Some(value.to_string()),
        },
        None => Param {
            key: word,
            value: None,
        },
    }
}

/// Splits on whitespace outside double quotes and drops the quotes.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut current));
                }
                started = false;
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Option<&str>) -> Param {
        Param {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn splits_flags_and_values() {
        let got = parse("console=hvc0 quiet  agent.log=debug\n");
        assert_eq!(
            got,
            vec![
                kv("console", Some("hvc0")),
                kv("quiet", None),
                kv("agent.log", Some("debug")),
            ]
        );
    }

    #[test]
    fn quotes_hold_spaces_and_equals_stay_in_value() {
        let got = parse("a=\"x y\" b=c=d \"e f\"");
        assert_eq!(
            got,
            vec![kv("a", Some("x y")), kv("b", Some("c=d")), kv("e f", None)]
        );
    }

    #[test]
    fn empty_value_is_not_a_flag() {
        assert_eq!(parse("k= \"\""), vec![kv("k", Some("")), kv("", None)]);
        assert!(parse("   ").is_empty());
    }
}

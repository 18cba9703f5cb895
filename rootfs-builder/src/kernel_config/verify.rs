//! Checking the final `.config` against the requests, and explaining misses.
//!
//! A request is met when the final value is the requested one; a request for `n` is
//! also met by an option that is absent. Options on the per-arch allow-list may be
//! missing. Each miss is explained from the Kconfig files: where the option is
//! defined, its `depends on` lines and enclosing conditions, or that it does not
//! exist at all.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use super::fragment::{self, Request, Requests, NOT_SET};
use super::kconfig::KconfigIndex;

/// The result of comparing requests with a final config.
#[derive(Debug, Default)]
pub struct Verification {
    /// How many requests were checked.
    pub checked: usize,
    /// Requests not met, with the value found (`None`: absent).
    pub unmet: Vec<(Request, Option<String>)>,
    /// Allow-listed options that were requested and are absent.
    pub allowed_missing: Vec<String>,
}

/// Parses `.config` text into option values (without `CONFIG_`).
pub fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| fragment::parse_line(line).ok().flatten())
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Compares each request with the final values.
pub fn verify<'a>(
    requests: impl IntoIterator<Item = &'a Request>,
    actual: &HashMap<String, String>,
    allowed: &BTreeSet<String>,
) -> Verification {
    let mut result = Verification::default();
    for request in requests {
        result.checked += 1;
        let found = actual.get(&request.name);
        let value = found.map(String::as_str).unwrap_or(NOT_SET);
        if value == request.value {
            continue;
        }
        if found.is_none() && allowed.contains(&request.name) {
            result.allowed_missing.push(request.name.clone());
            continue;
        }
        result.unmet.push((request.clone(), found.cloned()));
    }
    result
}

/// Explains each unmet request, one block per option.
pub fn explain(unmet: &[(Request, Option<String>)], index: &KconfigIndex) -> String {
    let mut out = String::new();
    for (request, found) in unmet {
        let found = found.as_deref().unwrap_or("not set");
        let _ = writeln!(
            out,
            "  CONFIG_{}={} asked for by {}: final value {found}",
            request.name, request.value, request.origin
        );
        explain_sites(&mut out, &request.name, index);
    }
    out
}

/// Appends where an option is defined and what it depends on.
fn explain_sites(out: &mut String, name: &str, index: &KconfigIndex) {
    let sites = index.sites(name);
    if sites.is_empty() {
        let _ = writeln!(
            out,
            "      no such option in this kernel's Kconfig files for this arch \
             (misspelt, removed, or add it to the arch's {})",
            fragment::ALLOW_LIST
        );
    }
    for site in sites {
        for (place, condition) in &site.enclosing {
            let _ = writeln!(out, "      {place}: {condition}");
        }
        for (place, expr) in &site.depends {
            let _ = writeln!(out, "      {place}: depends on {expr}");
        }
        if !site.has_prompt {
            let _ = writeln!(
                out,
                "      {}: no prompt: only a `select` or its default sets it",
                site.at
            );
        } else if site.depends.is_empty() && site.enclosing.is_empty() {
            let _ = writeln!(out, "      {}: no `depends on`", site.at);
        }
    }
}

/// Checks requests plus hull-image's own settings against `.config` text.
pub fn verify_text(
    requests: &Requests,
    own: &[Request],
    config: &str,
    allowed: &BTreeSet<String>,
) -> Verification {
    verify(requests.iter().chain(own), &parse_config(config), allowed)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::kernel_config::fragment::Origin;
    use crate::kernel_config::kconfig::tests::sample_tree;

    fn request(name: &str, value: &str) -> Request {
        Request {
            name: name.into(),
            value: value.into(),
            origin: Origin {
                path: PathBuf::from("kernel/configs/common/fs.conf"),
                line: 3,
            },
        }
    }

    #[test]
    fn values_must_match_and_not_set_accepts_absent() {
        let actual = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x\"\n");
        let requests = [
            request("A", "y"),
            request("B", "n"),
            request("C", "n"),
            request("S", "\"x\""),
            request("D", "y"),
            request("A", "m"),
        ];
        let result = verify(&requests, &actual, &BTreeSet::new());
        assert_eq!(result.checked, 6);
        let names: Vec<_> = result.unmet.iter().map(|(r, _)| r.value.as_str()).collect();
        assert_eq!(names, ["y", "m"]);
        assert_eq!(result.unmet[0].1, None);
        assert_eq!(result.unmet[1].1.as_deref(), Some("y"));
    }

    #[test]
    fn allow_listed_options_may_be_absent_but_not_wrong() {
        let actual = parse_config("CONFIG_W=n\n");
        let allowed = BTreeSet::from(["GONE".to_owned(), "W".to_owned()]);
        let requests = [request("GONE", "y"), request("W", "y")];
        let result = verify(&requests, &actual, &allowed);
        assert_eq!(result.allowed_missing, ["GONE"]);
        assert_eq!(result.unmet.len(), 1);
    }

    #[test]
    fn unmet_option_names_fragment_and_depends_line() {
        let tree = sample_tree();
        let index = KconfigIndex::load(tree.path(), "x86").unwrap();
        let unmet = [(request("EROFS_FS", "y"), None)];
        let text = explain(&unmet, &index);
        assert!(
            text.contains("CONFIG_EROFS_FS=y asked for by kernel/configs/common/fs.conf:3"),
            "{text}"
        );
        assert!(text.contains("final value not set"), "{text}");
        assert!(
            text.contains("fs/erofs/Kconfig:3: depends on BLOCK"),
            "{text}"
        );
        assert!(
            text.contains("fs/Kconfig:8: inside if MISC_FILESYSTEMS"),
            "{text}"
        );
    }

    #[test]
    fn nonexistent_option_says_so() {
        let tree = sample_tree();
        let index = KconfigIndex::load(tree.path(), "x86").unwrap();
        let unmet = [(request("NO_SUCH_THING", "y"), None)];
        let text = explain(&unmet, &index);
        assert!(
            text.contains("CONFIG_NO_SUCH_THING=y asked for by"),
            "{text}"
        );
        assert!(text.contains("no such option"), "{text}");
        // An option of another arch does not exist for this one.
        let unmet = [(request("ARM64", "y"), None)];
        assert!(explain(&unmet, &index).contains("no such option"));
    }
}

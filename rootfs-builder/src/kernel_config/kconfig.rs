//! A reader for the kernel's Kconfig files, just deep enough to explain why an
//! option did not get its requested value: where the option is defined, its
//! `depends on` lines, the `if` blocks and menus around it, and whether it has a
//! prompt at all.
//!
//! The walk starts at the top-level `Kconfig` and follows `source` statements (with
//! `$(SRCARCH)` substituted), so only the target architecture's files are read and
//! `if` blocks in a parent file apply to the files it sources.
//!
//! Limitation: no macro expansion besides `$(SRCARCH)`, no glob patterns in `source`,
//! and `select`, `imply` and `visible if` are not reported.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors from reading the Kconfig tree.
#[derive(Debug, thiserror::Error)]
pub enum KconfigError {
    /// The top-level Kconfig file is missing or unreadable.
    #[error("cannot read {0} (is the kernel source unpacked there?)")]
    Read(PathBuf, #[source] io::Error),
}

/// Where and under what conditions an option is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The Kconfig file, relative to the source tree, and the line of `config NAME`.
    pub at: Place,
    /// The entry's own `depends on` expressions, with their places.
    pub depends: Vec<(Place, String)>,
    /// Conditions of the enclosing blocks, outermost first (`if X`, menus with
    /// `depends on`).
    pub enclosing: Vec<(Place, String)>,
    /// Whether the entry has a prompt, i.e. a user (or a fragment) can set it.
    pub has_prompt: bool,
}

/// A line in a Kconfig file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, relative to the source tree.
    pub file: PathBuf,
    /// The line number, from 1.
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// All option definitions of one kernel tree for one architecture.
#[derive(Debug, Default)]
pub struct KconfigIndex {
    sites: HashMap<String, Vec<Site>>,
}

impl KconfigIndex {
    /// Reads the Kconfig tree of `source` as seen for `srcarch` (`x86`, `arm64`, ...).
    pub fn load(source: &Path, srcarch: &str) -> Result<Self, KconfigError> {
        let top = source.join("Kconfig");
        let text = fs::read(&top).map_err(|e| KconfigError::Read(top.clone(), e))?;
        let mut walker = Walker {
            source,
            srcarch,
            index: KconfigIndex::default(),
            blocks: Vec::new(),
            depth: 0,
        };
        walker.file(Path::new("Kconfig"), &String::from_utf8_lossy(&text));
        Ok(walker.index)
    }

    /// The definitions of `name` (without `CONFIG_`); empty if it does not exist.
    pub fn sites(&self, name: &str) -> &[Site] {
        self.sites.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// How deep `source` may nest before the walk stops (guards against cycles).
const MAX_DEPTH: usize = 32;

/// A block that conditions the entries inside it.
#[derive(Debug, Clone)]
struct Block {
    kind: BlockKind,
    at: Place,
    /// `if X` for an if block, the title for a menu or choice.
    label: String,
    depends: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    If,
    Menu,
    Choice,
}

/// What `depends on` lines currently attach to.
enum Current {
    Nothing,
    Entry(String, Site),
    Block,
}

struct Walker<'a> {
    source: &'a Path,
    srcarch: &'a str,
    index: KconfigIndex,
    blocks: Vec<Block>,
    depth: usize,
}

impl Walker<'_> {
    fn file(&mut self, rel: &Path, text: &str) {
        let mut current = Current::Nothing;
        let mut help: Option<HelpSkip> = None;
        for (number, raw) in logical_lines(text) {
            let raw = raw.as_str();
            if let Some(skip) = help.as_mut() {
                if skip.swallows(raw) {
                    continue;
                }
                help = None;
            }
            let place = Place {
                file: rel.to_owned(),
                line: number,
            };
            let line = raw.trim();
            let (word, rest) = split_word(line);
            match word {
                "config" | "menuconfig" => {
                    self.finish(&mut current);
                    current = Current::Entry(rest.to_owned(), self.new_site(place));
                }
                "depends" => self.depends(&mut current, place, rest),
                "bool" | "tristate" | "string" | "int" | "hex" | "prompt" => {
                    mark_prompt(&mut current, word, rest)
                }
                "help" | "---help---" => help = Some(HelpSkip::new(raw)),
                "if" => self.open(&mut current, BlockKind::If, place, line),
                "menu" => self.open(&mut current, BlockKind::Menu, place, line),
                "choice" => self.open(&mut current, BlockKind::Choice, place, line),
                "endif" => self.close(&mut current, BlockKind::If),
                "endmenu" => self.close(&mut current, BlockKind::Menu),
                "endchoice" => self.close(&mut current, BlockKind::Choice),
                "source" | "osource" | "rsource" | "orsource" => {
                    self.finish(&mut current);
                    self.source(rel, word, rest);
                }
                "comment" | "mainmenu" => {
                    self.finish(&mut current);
                    current = Current::Nothing;
                }
                _ => {}
            }
        }
        self.finish(&mut current);
    }

    fn new_site(&self, at: Place) -> Site {
        let enclosing = self
            .blocks
            .iter()
            .filter_map(|b| block_condition(b).map(|c| (b.at.clone(), c)))
            .collect();
        Site {
            at,
            depends: Vec::new(),
            enclosing,
            has_prompt: false,
        }
    }

    fn depends(&mut self, current: &mut Current, place: Place, rest: &str) {
        let Some(expr) = rest.strip_prefix("on") else {
            return;
        };
        let expr = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        match current {
            Current::Entry(_, site) => site.depends.push((place, expr)),
            Current::Block => {
                if let Some(block) = self.blocks.last_mut() {
                    block.depends.push(expr);
                }
            }
            Current::Nothing => {}
        }
    }

    fn open(&mut self, current: &mut Current, kind: BlockKind, at: Place, line: &str) {
        self.finish(current);
        self.blocks.push(Block {
            kind,
            at,
            label: line.to_owned(),
            depends: Vec::new(),
        });
        *current = match kind {
            BlockKind::If => Current::Nothing,
            BlockKind::Menu | BlockKind::Choice => Current::Block,
        };
    }

    fn close(&mut self, current: &mut Current, kind: BlockKind) {
        self.finish(current);
        if let Some(at) = self.blocks.iter().rposition(|b| b.kind == kind) {
            self.blocks.truncate(at);
        }
    }

    fn finish(&mut self, current: &mut Current) {
        if let Current::Entry(name, site) = std::mem::replace(current, Current::Nothing) {
            self.index.sites.entry(name).or_default().push(site);
        }
    }

    fn source(&mut self, from: &Path, word: &str, rest: &str) {
        let target = rest
            .trim()
            .trim_matches('"')
            .replace("$(SRCARCH)", self.srcarch);
        if target.contains("$(") || self.depth >= MAX_DEPTH {
            return;
        }
        let rel = if word.starts_with("r") || word.starts_with("or") {
            from.parent().unwrap_or(Path::new("")).join(&target)
        } else {
            PathBuf::from(&target)
        };
        let Ok(bytes) = fs::read(self.source.join(&rel)) else {
            tracing::debug!(file = %rel.display(), "Kconfig source not found");
            return;
        };
        self.depth += 1;
        self.file(&rel, &String::from_utf8_lossy(&bytes));
        self.depth -= 1;
    }
}

/// The condition a block puts on what it contains, if any.
fn block_condition(block: &Block) -> Option<String> {
    let deps = block
        .depends
        .iter()
        .map(|d| format!("depends on {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    match block.kind {
        BlockKind::If => Some(format!("inside {}", block.label)),
        _ if deps.is_empty() => None,
        _ => Some(format!("inside {}: {deps}", block.label)),
    }
}

/// Records that the current entry has a prompt (a type with a quoted string, or
/// `prompt`).
fn mark_prompt(current: &mut Current, word: &str, rest: &str) {
    if let Current::Entry(_, site) = current {
        if word == "prompt" || rest.trim_start().starts_with('"') {
            site.has_prompt = true;
        }
    }
}

/// Splits off the first word of a trimmed line.
fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (line, ""),
    }
}

/// Lines with backslash continuations joined, each with its first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((at, line)) = lines.next() {
        let mut joined = line.trim_end().to_owned();
        while joined.ends_with('\\') {
            joined.pop();
            match lines.next() {
                Some((_, next)) => {
                    joined.push(' ');
                    joined.push_str(next.trim());
                }
                None => break,
            }
        }
        out.push((at + 1, joined));
    }
    out
}

/// Skips help text: it ends at the first non-blank line indented less than its
/// first line.
struct HelpSkip {
    keyword_indent: usize,
    text_indent: Option<usize>,
}

impl HelpSkip {
    fn new(keyword_line: &str) -> Self {
        Self {
            keyword_indent: indent(keyword_line),
            text_indent: None,
        }
    }

    fn swallows(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return true;
        }
        let here = indent(line);
        match self.text_indent {
            None if here > self.keyword_indent => {
                self.text_indent = Some(here);
                true
            }
            None => false,
            Some(text) => here >= text,
        }
    }
}

/// The indentation of a line in columns, tabs to multiples of 8.
fn indent(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col = (col / 8 + 1) * 8,
            _ => break,
        }
    }
    col
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small Kconfig tree: a top file sourcing an arch file and a sub-folder.
    pub(crate) fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("fs/erofs")).unwrap();
        fs::create_dir_all(root.join("arch/x86")).unwrap();
        fs::create_dir_all(root.join("arch/arm64")).unwrap();
        fs::write(
            root.join("Kconfig"),
            "mainmenu \"Test\"\nsource \"arch/$(SRCARCH)/Kconfig\"\nsource \"fs/Kconfig\"\n",
        )
        .unwrap();
        fs::write(root.join("arch/x86/Kconfig"), "config X86\n\tdef_bool y\n").unwrap();
        fs::write(
            root.join("arch/arm64/Kconfig"),
            "config ARM64\n\tdef_bool y\n",
        )
        .unwrap();
        fs::write(
            root.join("fs/Kconfig"),
            "menuconfig MISC_FILESYSTEMS\n\tbool \"Misc\"\n\thelp\n\t  if you say\n\n\
             \t  config FAKE here\n\nif MISC_FILESYSTEMS\nsource \"fs/erofs/Kconfig\"\nendif\n\
             menu \"Network\"\n\tdepends on NET\nconfig NFS\n\ttristate \"NFS\"\nendmenu\n\
             config HIDDEN\n\tbool\n\tdepends on X86\n",
        )
        .unwrap();
        fs::write(
            root.join("fs/erofs/Kconfig"),
            "config EROFS_FS\n\ttristate \"EROFS\"\n\tdepends on BLOCK\n\tdepends on X86 || \\\n\
             \t  ARM64\n\tselect FS_IOMAP\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn depends_and_enclosing_if_are_found() {
        let tree = sample_tree();
        let index = KconfigIndex::load(tree.path(), "x86").unwrap();
        let [site] = index.sites("EROFS_FS") else {
            panic!("one site expected: {:?}", index.sites("EROFS_FS"));
        };
        assert_eq!(site.at.to_string(), "fs/erofs/Kconfig:1");
        let deps: Vec<_> = site.depends.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(deps, ["BLOCK", "X86 || ARM64"]);
        assert_eq!(site.enclosing.len(), 1);
        assert_eq!(site.enclosing[0].1, "inside if MISC_FILESYSTEMS");
        assert_eq!(site.enclosing[0].0.to_string(), "fs/Kconfig:8");
        assert!(site.has_prompt);
    }

    #[test]
    fn menus_with_depends_and_prompts_are_reported() {
        let tree = sample_tree();
        let index = KconfigIndex::load(tree.path(), "x86").unwrap();
        let nfs = &index.sites("NFS")[0];
        assert_eq!(
            nfs.enclosing[0].1,
            "inside menu \"Network\": depends on NET"
        );
        let hidden = &index.sites("HIDDEN")[0];
        assert!(!hidden.has_prompt);
        assert!(hidden.enclosing.is_empty(), "{:?}", hidden.enclosing);
    }

    #[test]
    fn help_text_and_other_arches_are_skipped() {
        let tree = sample_tree();
        let index = KconfigIndex::load(tree.path(), "x86").unwrap();
        assert!(index.sites("FAKE").is_empty());
        assert!(index.sites("ARM64").is_empty());
        assert_eq!(index.sites("X86").len(), 1);
    }

    #[test]
    fn missing_tree_is_named() {
        let err = KconfigIndex::load(Path::new("/nonexistent-src"), "x86").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-src/Kconfig"),
            "{err}"
        );
    }
}

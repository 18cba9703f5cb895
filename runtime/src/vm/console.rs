//! The guest's console log: its tail for error messages, and what it says about
//! why a guest stopped.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How many lines of console a failure report shows.
pub const TAIL_LINES: usize = 30;
/// How many bytes from the end of the log are searched for those lines.
const TAIL_BYTES: u64 = 16 * 1024;

/// The last `lines` lines of the log at `path` (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    last_lines(&String::from_utf8_lossy(&bytes), lines)
}

fn last_lines(text: &str, lines: usize) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let all: Vec<&str> = cleaned.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// The kernel's panic message, if the console shows one.
pub fn panic_message(console: &str) -> Option<String> {
    console
        .lines()
        .find_map(|l| l.split_once("Kernel panic - not syncing:"))
        .map(|(_, msg)| msg.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_without_control_characters() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, "a\nb\x1b[2J\r\nc\nd\n").unwrap();
        assert_eq!(tail(&log, 2), "c\nd");
        assert_eq!(tail(&log, 10), "a\nb[2J\nc\nd");
    }

    #[test]
    fn missing_log_has_an_empty_tail() {
        assert_eq!(tail(Path::new("/nonexistent/console.log"), 5), "");
    }

    #[test]
    fn panic_message_is_found() {
        let console = "[ 1.0] Run /init as init process\n\
            [ 1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n";
        assert_eq!(
            panic_message(console).as_deref(),
            Some("Attempted to kill init! exitcode=0x00000000")
        );
        assert_eq!(panic_message("all fine"), None);
    }
}

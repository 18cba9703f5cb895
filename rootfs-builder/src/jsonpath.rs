//! Names the JSON field at a byte offset of a document, for error messages about
//! truncated or malformed JSON (where the parser only knows a line and column).
//!
//! The scanner tracks the stack of objects and arrays up to the offset, so it works on
//! text that is cut off or broken after that point. Paths read like
//! `artifacts[2].sha256`; the document root is `(top level)`.

/// One level of nesting.
#[derive(Debug, Clone)]
enum Level {
    /// In an object; the last key seen, if any.
    Object(Option<String>),
    /// In an array; the index of the current element.
    Array(usize),
}

/// The path of the field being read at `offset` in `text`.
pub fn path_at(text: &str, offset: usize) -> String {
    let mut stack: Vec<Level> = Vec::new();
    let mut chars = text
        .char_indices()
        .take_while(|&(i, _)| i < offset)
        .peekable();
    let mut last_string = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => last_string = read_string(&mut chars),
            ':' => {
                if let Some(Level::Object(key)) = stack.last_mut() {
                    *key = Some(std::mem::take(&mut last_string));
                }
            }
            ',' => match stack.last_mut() {
                Some(Level::Array(index)) => *index += 1,
                Some(Level::Object(key)) => *key = None,
                None => {}
            },
            '{' => stack.push(Level::Object(None)),
            '[' => stack.push(Level::Array(0)),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    render(&stack)
}

/// Reads a string body after its opening quote, honouring escapes.
fn read_string(chars: &mut impl Iterator<Item = (usize, char)>) -> String {
    let mut out = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn render(stack: &[Level]) -> String {
    let mut path = String::new();
    for level in stack {
        match level {
            Level::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Level::Object(None) => {}
            Level::Array(index) => path.push_str(&format!("[{index}]")),
        }
    }
    if path.is_empty() {
        path.push_str("(top level)");
    }
    path
}

/// The byte offset of a 1-based line and column (as `serde_json` reports them).
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"a": 1, "list": [{"x": 1}, {"name": "v\"q", "sha256": "abc"#;

    #[test]
    fn names_a_field_inside_an_array_of_objects() {
        assert_eq!(path_at(DOC, DOC.len()), "list[1].sha256");
    }

    #[test]
    fn names_top_level_fields_and_the_root() {
        assert_eq!(path_at(DOC, 7), "a");
        assert_eq!(path_at(DOC, 0), "(top level)");
        assert_eq!(path_at(r#"{"a": 1, "#, 9), "(top level)");
    }

    #[test]
    fn offsets_from_line_and_column() {
        let text = "ab\ncde\nf";
        assert_eq!(offset_of(text, 2, 2), 5);
        assert_eq!(offset_of(text, 9, 9), text.len());
    }
}

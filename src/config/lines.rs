//! Mapping key paths back to lines of the file: serde forgets where values
//! were, and the admin reading an error is editing that file.

pub(super) fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Maps key paths such as `mailbox[1].tls` to lines of the file, so semantic
/// errors can point at a line even though serde has forgotten where values were.
pub(super) struct KeyLines<'a> {
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> KeyLines<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        KeyLines {
            text,
            doc: toml_edit::ImDocument::parse(text).ok(),
        }
    }

    /// Walks the path as far as the file has it; the deepest key found gives the line.
    pub(super) fn line_of(&self, key: &str) -> Option<usize> {
        use toml_edit::{Item, TableLike, Value};
        let doc = self.doc.as_ref()?;
        let mut table: &dyn TableLike = doc.as_table();
        let mut best = None;
        for seg in key.split('.') {
            let (name, index) = match seg.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (seg, None),
            };
            let Some((k, item)) = table.get_key_value(name) else {
                break;
            };
            best = k.span().or(best);
            match (item, index) {
                (Item::ArrayOfTables(a), Some(i)) => {
                    let Some(t) = a.get(i) else { break };
                    best = t.span().or(best);
                    table = t;
                }
                (Item::Table(t), None) => table = t,
                (Item::Value(Value::InlineTable(t)), None) => table = t,
                _ => break,
            }
        }
        best.map(|s| line_of_offset(self.text, s.start))
    }
}

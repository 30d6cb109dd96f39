//! Where a key is written in the config text, for errors found after
//! parsing (serde only knows where the values it could not read are).

/// Where the key at dotted path `at` is written: each segment is looked for
/// inside the block of the one before it. A single name is the first key
/// of that name anywhere. Falls back to the deepest segment found, then to
/// the top of the file.
pub(super) fn locate(text: &str, at: &str) -> (usize, usize) {
    let segments: Vec<&str> = at.split('.').collect();
    if segments.len() < 2 {
        return locate_field(text, at);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    // (first line of the block, indentation of the block's parent key)
    let mut block: (usize, Option<usize>) = (0, None);
    for segment in segments {
        let mut hit = None;
        for (index, line) in lines.iter().enumerate().skip(block.0) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if block.1.is_some_and(|parent| indent <= parent) {
                break;
            }
            if block.1.is_none() && indent > 0 {
                continue;
            }
            if let Some(column) = key_column(line, segment) {
                hit = Some((index, column));
                break;
            }
        }
        let Some((index, column)) = hit else { break };
        found = Some((index + 1, column));
        block = (index + 1, Some(column - 1));
    }
    found.unwrap_or((1, 1))
}

/// The column of `key` when `line` writes it as a mapping key (plain,
/// quoted, or as a sequence item's first key).
fn key_column(line: &str, key: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let rest = [format!("\"{key}\""), format!("'{key}'"), key.to_owned()]
        .iter()
        .find_map(|written| item.strip_prefix(written.as_str()))?;
    rest.trim_start()
        .starts_with(':')
        .then(|| line.len() - item.len() + 1)
}

/// The first key named `field` anywhere, or the top of the file.
fn locate_field(text: &str, field: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(index, line)| key_column(line, field).map(|column| (index + 1, column)))
        .unwrap_or((1, 1))
}

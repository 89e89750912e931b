//! Reading `uvs audit --json` output.

/// The finding named `check` in `uvs audit --json` output.
pub fn finding<'a>(v: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    v["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["check"] == check))
        .unwrap_or_else(|| panic!("no {check} in {v}"))
}

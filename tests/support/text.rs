//! Assertions on the text the programs print.

/// Asserts that `text` holds `want`; otherwise the test fails showing both.
#[track_caller]
pub fn holds(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} is not in:\n{text}");
}

//! Padding of table cells. `format!("{c:<w$}")` panics when `w` exceeds 65,535 ("Formatting
//! argument out of range"), and a cell's width comes from the repository (a snapshot's host,
//! tags, paths): these helpers pad any width.

/// Width of `s` in columns, counted as characters (as `format!` pads).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` followed by spaces up to `w` columns (left-aligned); unchanged when already wider.
pub fn pad_right(s: &str, w: usize) -> String {
    let mut out = String::with_capacity(s.len() + w.saturating_sub(width(s)));
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out
}

/// Spaces up to `w` columns, then `s` (right-aligned); unchanged when already wider.
pub fn pad_left(s: &str, w: usize) -> String {
    let mut out: String = std::iter::repeat_n(' ', w.saturating_sub(width(s))).collect();
    out.push_str(s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_any_width() {
        assert_eq!(pad_right("ab", 4), "ab  ");
        assert_eq!(pad_left("ab", 4), "  ab");
        assert_eq!(pad_right("abc", 2), "abc");
        assert_eq!(pad_right("é", 2), "é ");
        assert_eq!(pad_right("", 70_000).len(), 70_000);
        assert_eq!(pad_left("x", 70_000).len(), 70_000);
    }
}

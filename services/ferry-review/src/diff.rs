//! A line diff for the owner: what a revision changed in a job's code.
//!
//! The lines are compared by a longest common subsequence, and shown as `  ` (kept), `- ` (removed) and `+ `
//! (added), every line escaped ([`crate::escape::line`], so no line of either version can hide another). Two
//! versions too long to compare here (more than [`MAX_CELLS`] line pairs) are summarised instead, with how to see
//! the rest.

use crate::escape;

/// The most line pairs compared (the table costs two bytes a pair).
pub const MAX_CELLS: usize = 4 << 20;

/// The diff of `old` to `new`, one line per line, with a closing count; `None` when they are equal.
pub fn lines(old: &str, new: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Drop the common head and tail first: a revision usually changes little.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if ma.len().saturating_mul(mb.len()) > MAX_CELLS {
        return Some(format!(
            "(the versions differ in lines {} to {} of {} and {}: too long to compare here; `ferry review show \
             --json` on both gives the exact code)",
            head + 1,
            a.len().max(b.len()) - tail,
            a.len(),
            b.len()
        ));
    }
    // lcs[i][j]: longest common subsequence of ma[i..] and mb[j..].
    let w = mb.len() + 1;
    let mut lcs = vec![0u16; (ma.len() + 1) * w];
    for i in (0..ma.len()).rev() {
        for j in (0..mb.len()).rev() {
            lcs[i * w + j] = if ma[i] == mb[j] {
                lcs[(i + 1) * w + j + 1].saturating_add(1)
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let context = |l: &str| format!("  {}", escape::line(l));
    if head > 0 {
        out.push(format!("  ... {head} unchanged line(s)"));
    }
    let (mut i, mut j, mut removed, mut added) = (0, 0, 0, 0);
    while i < ma.len() || j < mb.len() {
        if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
            out.push(context(ma[i]));
            i += 1;
            j += 1;
        } else if j < mb.len() && (i == ma.len() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j]) {
            out.push(format!("+ {}", escape::line(mb[j])));
            added += 1;
            j += 1;
        } else {
            out.push(format!("- {}", escape::line(ma[i])));
            removed += 1;
            i += 1;
        }
    }
    if tail > 0 {
        out.push(format!("  ... {tail} unchanged line(s)"));
    }
    out.push(format!("({removed} line(s) removed, {added} added)"));
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_shows_as_removed_and_added_and_escapes_hold() {
        let old = "import x\nprint(1)\nend\n";
        let new = "import x\nprint(2)\x1b[2K\nend\n";
        let d = lines(old, new).unwrap();
        assert!(d.contains("- print(1)"), "{d}");
        assert!(d.contains("+ print(2)\\x1b[2K"), "{d}");
        assert!(!d.contains('\x1b'));
        assert!(d.contains("(1 line(s) removed, 1 added)"), "{d}");
        assert_eq!(lines(old, old), None);
    }

    #[test]
    fn versions_too_long_to_compare_are_summarised() {
        let old: String = (0..3000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("b{i}\n")).collect();
        let d = lines(&old, &new).unwrap();
        assert!(d.contains("too long to compare"), "{d}");
    }
}

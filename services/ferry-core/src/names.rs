//! Validation of the names that reach file paths, broker queues and bundle entries.
//!
//! Output names have one rule, [`output_path`], shared by the sandbox's collection, the bundle export and
//! the low side's import, with [`OutputNames`] refusing names of one job that would look or land the
//! same. `docs/review-rules.md` explains the rules.

use thiserror::Error;

/// A name that can't be used, with what is wrong with it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {what} \"{name}\": {why}")]
pub struct NameError {
    /// What kind of name it was meant to be ("researcher name", "asset name", "output file", ...).
    pub what: &'static str,
    /// The refused name as it may be shown: escaped (`ferry_review::escape::line`) and cut at 120
    /// characters.
    pub name: String,
    /// Exactly what is wrong with it, e.g. "it contains the invisible character \u{200b} (character 8)".
    pub why: String,
}

fn check(what: &'static str, name: &str, max: usize, extra: &[char]) -> Result<(), NameError> {
    let err = |why: &str| {
        Err(NameError {
            what,
            name: shown(name),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > max {
        return Err(NameError {
            what,
            name: shown(name),
            why: format!("it is {} bytes long; the limit is {max}", name.len()),
        });
    }
    let first = name.chars().next().unwrap_or('-');
    if !first.is_ascii_alphanumeric() {
        return err("it must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    {
        return err(if extra.is_empty() {
            "only letters, digits, '-' and '_' are allowed"
        } else {
            "only letters, digits, '-', '_' and '.' are allowed"
        });
    }
    Ok(())
}

/// A researcher's name is also their broker user name and part of their results queue's name.
pub fn researcher(name: &str) -> Result<(), NameError> {
    lower_case_name("researcher name", name)
}

/// A reviewer's name follows the researchers' rule (a reviewer may well be one, on the other side).
pub fn reviewer(name: &str) -> Result<(), NameError> {
    lower_case_name("reviewer name", name)
}

fn lower_case_name(what: &'static str, name: &str) -> Result<(), NameError> {
    lower_case(what, name, 32, &[])
}

fn lower_case(what: &'static str, name: &str, max: usize, extra: &[char]) -> Result<(), NameError> {
    check(what, name, max, extra)?;
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NameError {
            what,
            name: shown(name),
            why: "use lower case only".into(),
        });
    }
    Ok(())
}

/// A runtime's name is what jobs give as their `runtime` (`python`, `pandas-2.2`): lower case, like researchers'.
/// `dead` is refused: its job queue would be `ferry.jobs.dead`, the dead-letter queue of every job queue.
pub fn runtime(name: &str) -> Result<(), NameError> {
    lower_case("runtime name", name, 64, &['.'])?;
    if format!("{}{name}", crate::wire::HIGH_JOBS_QUEUE_PREFIX) == crate::wire::HIGH_JOBS_DEAD_QUEUE
    {
        return Err(NameError {
            what: "runtime name",
            name: shown(name),
            why: format!(
                "its queue would be {}, the dead-letter queue",
                crate::wire::HIGH_JOBS_DEAD_QUEUE
            ),
        });
    }
    Ok(())
}

/// Whether `text` is a SHA-256 in lower-case hex (64 digits): safe to use as a file name.
pub fn is_hex_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An asset's name is the file name a job sees under `inputs/`.
pub fn asset(name: &str) -> Result<(), NameError> {
    check("asset name", name, 64, &['.'])?;
    if name.contains("..") {
        return Err(NameError {
            what: "asset name",
            name: shown(name),
            why: "'..' is not allowed".into(),
        });
    }
    Ok(())
}

/// Longest output name (a path relative to `outputs/`), in bytes of UTF-8.
///
/// It must fit, after the longest prefix a bundle puts in front of it, in the bundle format's default
/// entry path cap (see [`OUTPUT_ENTRY_PREFIX_MAX`] and [`BUNDLE_PATH_CAP`]); a longer name made the
/// receiving side quarantine the whole bundle.
pub const MAX_OUTPUT_NAME_BYTES: usize = 200;

/// Most directories an output file may sit under (`a.txt` is at depth 0, `sub/b.json` at depth 1). The
/// sandbox stops a job that nests directories deeper under `outputs/`.
pub const MAX_OUTPUT_DEPTH: usize = 32;

/// The longest prefix a bundle entry puts before an output name: `results/<36-character uuid>/outputs/`
/// (53 bytes). Today's entries are `outputs/<job id>/<name>` (`records::output_entry`, 45 bytes before
/// the name); the cap leaves room for the longer layout.
pub const OUTPUT_ENTRY_PREFIX_MAX: usize = "results/".len() + 36 + "/outputs/".len();

/// The entry path cap that `ferry_bundle::Limits::default()` enforces when a bundle is opened (its
/// `max_path_len`), in bytes. A test in this module checks the two agree.
pub const BUNDLE_PATH_CAP: usize = 255;

const _: () = assert!(OUTPUT_ENTRY_PREFIX_MAX + MAX_OUTPUT_NAME_BYTES <= BUNDLE_PATH_CAP);

fn output_error(name: &str, why: String) -> NameError {
    NameError {
        what: "output file",
        name: shown(name),
        why,
    }
}

/// The name as a person may see it in an error: escaped, at most 120 characters.
fn shown(name: &str) -> String {
    shown_escaped(&ferry_review::escape::line(name))
}

fn shown_escaped(escaped: &str) -> String {
    let mut chars = escaped.chars();
    let mut out: String = chars.by_ref().take(120).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// The one rule for a result file's name, a path relative to `outputs/`. The sandbox applies it when it
/// collects outputs, Ferry when it exports them in a bundle, and the low side when it imports them.
///
/// A valid name:
/// - is 1 to [`MAX_OUTPUT_NAME_BYTES`] bytes of UTF-8;
/// - is `/`-separated components, none empty, `.` or `..` (so it is never absolute), at most
///   [`MAX_OUTPUT_DEPTH`] directories deep;
/// - has no backslash, and no character that review would have to show escaped: no control character,
///   no bidirectional control, no invisible or format character (zero-width, soft hyphen, variation
///   selectors, tags), no space other than U+0020, no line separator, private-use character or
///   noncharacter (the classes of [`ferry_review::escape::Class`]); so a valid name is shown as it is;
/// - has no component that begins or ends with a space, which a listing would not show.
///
/// Names that are each valid can still collide: see [`OutputNames`].
pub fn output_path(path: &str) -> Result<(), NameError> {
    let err = |why: String| Err(output_error(path, why));
    if path.is_empty() {
        return err("it is empty".into());
    }
    if path.len() > MAX_OUTPUT_NAME_BYTES {
        return err(format!(
            "it is {} bytes long; the limit is {MAX_OUTPUT_NAME_BYTES} bytes",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return err("it is absolute (starts with `/`)".into());
    }
    for (at, c) in path.chars().enumerate() {
        if c == '\\' {
            return err(format!("it contains a backslash (character {})", at + 1));
        }
        if let Some(class) = ferry_review::escape::class(c) {
            return err(format!(
                "it contains the {} {} (character {})",
                class.describe(),
                ferry_review::escape::escape_char(c),
                at + 1
            ));
        }
    }
    let depth = path.split('/').count() - 1;
    for part in path.split('/') {
        let why = match part {
            "" => "it has an empty component (`//` or a trailing `/`)",
            "." => "it has a `.` component",
            ".." => "it has a `..` component",
            _ if part.starts_with(' ') || part.ends_with(' ') => {
                "a component begins or ends with a space"
            }
            _ => continue,
        };
        return err(why.into());
    }
    if depth > MAX_OUTPUT_DEPTH {
        return err(format!(
            "it is {depth} directories deep; the limit is {MAX_OUTPUT_DEPTH}"
        ));
    }
    Ok(())
}

/// [`output_path`] for a name read from a file system, which may not be UTF-8; returns it as text.
pub fn output_path_bytes(raw: &[u8]) -> Result<&str, NameError> {
    let path = std::str::from_utf8(raw).map_err(|e| NameError {
        what: "output file",
        name: shown_escaped(&ferry_review::escape::line_bytes(raw)),
        why: format!(
            "it is not valid UTF-8 (byte {} is \\x{:02x})",
            e.valid_up_to() + 1,
            raw[e.valid_up_to()]
        ),
    })?;
    output_path(path)?;
    Ok(path)
}

/// What two output names are compared by: NFKC, with invisible and other escaped characters removed,
/// in lower case. `summary.txt`, `ＳＵＭＭＡＲＹ.txt`, `summary\u{200b}.txt` and `Summary.txt` share one key.
///
/// Case is folded because results are extracted on machines whose file systems may ignore case (macOS,
/// Windows), where two names differing only in case would overwrite each other.
pub fn output_name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let visible: String = name
        .chars()
        .filter(|&c| !ferry_review::escape::is_dangerous(c))
        .collect();
    let folded: String = visible.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// The names of one job's outputs, refusing a name that is invalid ([`output_path`]), that collides with
/// an earlier one after [`output_name_key`], or that needs an earlier file to be a directory (or an
/// earlier file's directory to be a file).
#[derive(Clone, Debug, Default)]
pub struct OutputNames {
    /// Key of each accepted name, to the name.
    files: std::collections::HashMap<String, String>,
    /// Key of each directory above an accepted name, to that directory as first seen.
    dirs: std::collections::HashMap<String, String>,
}

impl OutputNames {
    /// An empty set.
    pub fn new() -> OutputNames {
        OutputNames::default()
    }

    /// Adds `name`, or says why it cannot be one of the same job's outputs.
    pub fn insert(&mut self, name: &str) -> Result<(), NameError> {
        output_path(name)?;
        let key = output_name_key(name);
        if let Some(earlier) = self.files.get(&key) {
            let why = if earlier == name {
                "it is already an output of this job".to_string()
            } else {
                format!(
                    "it looks the same as the output `{}` (they are equal once compatibility forms, \
                     case and invisible characters are set aside)",
                    shown(earlier)
                )
            };
            return Err(output_error(name, why));
        }
        if let Some(dir) = self.dirs.get(&key) {
            return Err(output_error(
                name,
                format!("`{}` is already a directory of other outputs", shown(dir)),
            ));
        }
        let mut dirs = Vec::new();
        for (at, _) in name.match_indices('/') {
            let dir = &name[..at];
            let dir_key = output_name_key(dir);
            if let Some(file) = self.files.get(&dir_key) {
                return Err(output_error(
                    name,
                    format!(
                        "it needs `{}` to be a directory, but `{}` is an output file",
                        shown(dir),
                        shown(file)
                    ),
                ));
            }
            dirs.push((dir_key, dir));
        }
        for (dir_key, dir) in dirs {
            self.dirs.entry(dir_key).or_insert_with(|| dir.to_string());
        }
        self.files.insert(key, name.to_string());
        Ok(())
    }

    /// How many names were accepted.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no name was accepted.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn researcher_names() {
        assert!(researcher("alice").is_ok());
        assert!(researcher("bob-2").is_ok());
        assert!(researcher("").is_err());
        assert!(researcher("Alice").is_err());
        assert!(researcher("a.b").is_err());
        assert!(researcher("-a").is_err());
        assert!(researcher(&"a".repeat(33)).is_err());
    }

    #[test]
    fn asset_names() {
        assert!(asset("training-data.csv").is_ok());
        assert!(asset("../etc").is_err());
        assert!(asset("a/b").is_err());
        assert!(asset("a..b").is_err());
    }

    #[test]
    fn output_paths() {
        assert!(output_path("a.txt").is_ok());
        assert!(output_path("sub/b.json").is_ok());
        assert!(output_path("résumé/年度.csv").is_ok());
        assert!(output_path("../x").is_err());
        assert!(output_path("/x").is_err());
        assert!(output_path("a//b").is_err());
        assert!(output_path("a/").is_err());
        assert!(output_path("a/./b").is_err());
    }

    fn why(name: &str) -> String {
        output_path(name).unwrap_err().why
    }

    #[test]
    fn output_name_refusals_say_exactly_what_is_wrong() {
        assert_eq!(why(""), "it is empty");
        assert_eq!(
            why("summary\u{200b}.txt"),
            "it contains the invisible character \\u{200b} (character 8)"
        );
        assert_eq!(
            why("report\u{202e}txt.exe"),
            "it contains the bidirectional control \\u{202e} (character 7)"
        );
        assert_eq!(
            why("a\x1b[2Kb"),
            "it contains the control character \\x1b (character 2)"
        );
        assert_eq!(
            why("a\tb"),
            "it contains the control character \\x09 (character 2)"
        );
        assert_eq!(
            why("nb\u{a0}sp"),
            "it contains the unusual space \\u{00a0} (character 3)"
        );
        assert_eq!(
            why("soft\u{ad}"),
            "it contains the invisible character \\u{00ad} (character 5)"
        );
        assert_eq!(
            why("emoji\u{fe0f}"),
            "it contains the invisible character \\u{fe0f} (character 6)"
        );
        assert_eq!(
            why("tag\u{e0041}"),
            "it contains the invisible character \\u{e0041} (character 4)"
        );
        assert_eq!(why("a\\b"), "it contains a backslash (character 2)");
        assert_eq!(why("x/../y"), "it has a `..` component");
        assert_eq!(why("x/./y"), "it has a `.` component");
        assert_eq!(
            why("x//y"),
            "it has an empty component (`//` or a trailing `/`)"
        );
        assert_eq!(why("/etc/passwd"), "it is absolute (starts with `/`)");
        assert_eq!(why("dir /a"), "a component begins or ends with a space");
        assert_eq!(why(" a"), "a component begins or ends with a space");
        assert_eq!(
            why(&"x".repeat(201)),
            "it is 201 bytes long; the limit is 200 bytes"
        );
        let deep = format!("{}f", "d/".repeat(33));
        assert_eq!(why(&deep), "it is 33 directories deep; the limit is 32");
        assert!(output_path(&format!("{}f", "d/".repeat(32))).is_ok());
    }

    #[test]
    fn refused_names_are_shown_escaped_in_the_error() {
        let e = output_path("ok\x1b[2K\rforged").unwrap_err();
        assert_eq!(e.name, "ok\\x1b[2K\\x0dforged");
        assert!(!e.to_string().contains('\x1b'));
        let e = asset("\u{202e}evil").unwrap_err();
        assert_eq!(e.name, "\\u{202e}evil");
    }

    #[test]
    fn non_utf8_output_names_are_refused_with_the_byte() {
        let e = output_path_bytes(b"caf\xe9.txt").unwrap_err();
        assert_eq!(e.why, "it is not valid UTF-8 (byte 4 is \\xe9)");
        assert_eq!(e.name, "caf\\xe9.txt");
        assert_eq!(output_path_bytes(b"ok.txt"), Ok("ok.txt"));
        assert!(output_path_bytes(b"a/../b").is_err());
    }

    #[test]
    fn every_valid_name_is_shown_without_escapes() {
        for name in [
            "a.txt",
            "sub/b.json",
            "résumé/年度.csv",
            "x y.txt",
            "😀.png",
        ] {
            output_path(name).unwrap();
            assert!(matches!(
                ferry_review::escape::line(name),
                std::borrow::Cow::Borrowed(_)
            ));
        }
    }

    #[test]
    fn names_equal_after_nfkc_case_and_invisibles_collide() {
        assert_eq!(output_name_key("summary\u{200b}.txt"), "summary.txt");
        assert_eq!(output_name_key("ＳＵＭＭＡＲＹ.txt"), "summary.txt");
        assert_eq!(output_name_key("ﬁle.txt"), "file.txt");
        let mut names = OutputNames::new();
        names.insert("summary.txt").unwrap();
        names.insert("sub/a.csv").unwrap();
        let e = names.insert("Summary.txt").unwrap_err();
        assert_eq!(
            e.why,
            "it looks the same as the output `summary.txt` (they are equal once compatibility forms, \
             case and invisible characters are set aside)"
        );
        assert!(names.insert("ＳＵＭＭＡＲＹ.txt").is_err());
        // The invisible character is refused by the rule itself before any comparison.
        assert!(names
            .insert("summary\u{200b}.txt")
            .unwrap_err()
            .why
            .contains("invisible"));
        assert_eq!(
            names.insert("summary.txt").unwrap_err().why,
            "it is already an output of this job"
        );
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_file_and_a_directory_of_the_same_name_collide() {
        let mut names = OutputNames::new();
        names.insert("a").unwrap();
        assert_eq!(
            names.insert("A/b").unwrap_err().why,
            "it needs `A` to be a directory, but `a` is an output file"
        );
        names.insert("d/x").unwrap();
        assert_eq!(
            names.insert("D").unwrap_err().why,
            "`d` is already a directory of other outputs"
        );
        names.insert("d/y").unwrap();
        assert!(!names.is_empty());
    }

    /// The longest valid name, under the longest prefix a bundle gives it, passes the bundle's own path
    /// check and fits the path cap its reader enforces by default.
    #[test]
    fn longest_output_name_fits_a_bundle_entry_path() {
        assert_eq!(
            ferry_bundle::Limits::default().max_path_len as usize,
            BUNDLE_PATH_CAP
        );
        let job = uuid::Uuid::new_v4().to_string();
        assert_eq!(job.len(), 36);
        let mut longest = "d/".repeat(MAX_OUTPUT_DEPTH);
        while longest.len() + 'é'.len_utf8() <= MAX_OUTPUT_NAME_BYTES {
            longest.push('é');
        }
        while longest.len() < MAX_OUTPUT_NAME_BYTES {
            longest.push('x');
        }
        output_path(&longest).unwrap();
        assert_eq!(longest.len(), MAX_OUTPUT_NAME_BYTES);
        let entries = [
            format!("results/{job}/outputs/{longest}"),
            crate::records::output_entry(&job, &longest),
        ];
        for entry in entries {
            assert!(entry.len() <= OUTPUT_ENTRY_PREFIX_MAX + MAX_OUTPUT_NAME_BYTES);
            assert!(entry.len() <= BUNDLE_PATH_CAP, "{} bytes", entry.len());
            ferry_bundle::check_path(&entry).unwrap();
        }
    }

    #[test]
    fn a_runtime_named_dead_is_refused_because_its_queue_would_be_the_dead_letter_queue() {
        let err = runtime("dead").unwrap_err().to_string();
        assert!(
            err.contains("ferry.jobs.dead, the dead-letter queue"),
            "{err}"
        );
        runtime("deadline").unwrap();
        runtime("pandas-2.2").unwrap();
    }
}

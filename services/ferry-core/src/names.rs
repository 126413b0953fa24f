//! Validation of the names that reach file paths, broker queues and bundle entries.

use thiserror::Error;

/// A name that can't be used, with what is wrong with it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {what} {name:?}: {why}")]
pub struct NameError {
    /// What kind of name it was meant to be ("researcher name", "asset name", ...).
    pub what: &'static str,
    /// The refused name.
    pub name: String,
    /// Why it was refused.
    pub why: &'static str,
}

fn check(what: &'static str, name: &str, max: usize, extra: &[char]) -> Result<(), NameError> {
    let err = |why| {
        Err(NameError {
            what,
            name: name.chars().take(80).collect(),
            why,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > max {
        return err("it is too long");
    }
    let first = name.chars().next().unwrap_or('-');
    if !first.is_ascii_alphanumeric() {
        return err("it must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    {
        return err("only letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

/// A researcher's name is also their broker user name and part of their results queue's name.
pub fn researcher(name: &str) -> Result<(), NameError> {
    check("researcher name", name, 32, &[])?;
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NameError {
            what: "researcher name",
            name: name.into(),
            why: "use lower case only",
        });
    }
    Ok(())
}

/// An asset's name is the file name a job sees under `inputs/`.
pub fn asset(name: &str) -> Result<(), NameError> {
    check("asset name", name, 64, &['.'])?;
    if name.contains("..") {
        return Err(NameError {
            what: "asset name",
            name: name.into(),
            why: "'..' is not allowed",
        });
    }
    Ok(())
}

/// A result file's path relative to `outputs/`: `/`-separated components, each a plain file name.
pub fn output_path(path: &str) -> Result<(), NameError> {
    let err = |why| {
        Err(NameError {
            what: "output file",
            name: path.chars().take(120).collect(),
            why,
        })
    };
    if path.is_empty() || path.len() > 200 {
        return err("its length must be 1 to 200 bytes");
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return err("it has an empty, '.' or '..' component");
        }
        if part.chars().any(|c| c.is_control() || c == '\\') {
            return err("it has a control character or backslash");
        }
    }
    Ok(())
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
        assert!(output_path("../x").is_err());
        assert!(output_path("/x").is_err());
        assert!(output_path("a//b").is_err());
    }
}

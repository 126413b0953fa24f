//! The repository's own documents say what the code does.

use std::path::Path;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn each_deploy_example_names_its_own_side() {
    for (side, other) in [("low", "high"), ("high", "low")] {
        let text = repo_file(&format!("deploy/{side}.ferry.toml"));
        let first = text.lines().next().unwrap();
        assert!(
            first.contains(&format!("`ferry init --side {side}`")),
            "deploy/{side}.ferry.toml: {first}"
        );
        assert!(
            !first.contains(&format!("--side {other}")),
            "deploy/{side}.ferry.toml: {first}"
        );
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("side = \"{side}\"")),
            "deploy/{side}.ferry.toml sets another side"
        );
    }
}

/// Every repository path the README and the docs name in backticks exists in a clone, and none points outside
/// it (the README once sent readers to `../shared/`, which a clone does not have).
#[test]
fn the_docs_name_only_paths_a_clone_has() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let top: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "target")
        .collect();
    let mut checked = 0;
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/contract.md",
        "deploy/README.md",
    ] {
        let text = repo_file(doc);
        for (i, token) in text.split('`').enumerate() {
            if i % 2 == 0 || token.contains(char::is_whitespace) {
                continue;
            }
            assert!(
                !token.starts_with("../"),
                "{doc} names {token}, outside the repository"
            );
            let first = token.split('/').next().unwrap();
            if token.contains('/') && top.iter().any(|t| t == first) {
                let path = token.split(':').next().unwrap();
                assert!(
                    root.join(path).exists(),
                    "{doc} names {token}, which does not exist"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} paths checked");
}

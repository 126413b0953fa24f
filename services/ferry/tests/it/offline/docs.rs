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

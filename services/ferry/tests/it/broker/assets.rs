//! Directory assets: a model folder (config, tokenizer, weight shard) whose mock is over 64 MiB, fetched, mock-run
//! and run through the whole flow, its version in the receipt.

use std::path::Path;

use crate::harness::Pair;

const LIST: &str = r#"
import json, os
root = "inputs/model"
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(dirpath, f)
        print(os.path.relpath(p, root), os.path.getsize(p))
print("layers", json.load(open(os.path.join(root, "config.json")))["layers"])
try:
    open(os.path.join(root, "new.txt"), "w")
    print("writable")
except OSError:
    print("read-only")
"#;

/// A tmpfs of `size` bytes mounted at a directory of the test's (root only, as the broker tests run), unmounted
/// when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: u64) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs at {}", path.display());
        SmallDisk {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

fn model(dir: &Path, layers: u32, shard: u64) {
    std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
    std::fs::write(dir.join("config.json"), format!("{{\"layers\": {layers}}}")).unwrap();
    std::fs::write(dir.join("tokenizer/vocab.txt"), "hello\nworld\n").unwrap();
    let bytes: Vec<u8> = (0..shard)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
}

#[test]
fn a_model_folder_with_a_mock_over_64_mib_is_fetched_mock_run_and_run() {
    let mut pair = Pair::with_broker();
    let root = pair.dir.path().to_path_buf();
    let private = root.join("model");
    let mock = root.join("model-mock");
    model(&private, 12, 2 << 20);
    let mock_shard = 70u64 << 20;
    model(&mock, 2, mock_shard);
    pair.ok(&[
        "asset",
        "add",
        "--config",
        pair.high_s(),
        "model",
        "--private",
        private.to_str().unwrap(),
        "--mock",
        mock.to_str().unwrap(),
        "--description",
        "a small model folder",
    ]);
    let imported = pair.carry(&pair.high, &pair.low).expect("the catalog");
    assert!(imported.contains("catalog of 1 asset"), "{imported}");
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];

    let assets = pair.wait_for("the assets call", || {
        let out = pair.run_env(&["assets", "--json"], &env);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let list: serde_json::Value = serde_json::from_str(&assets).unwrap();
    assert_eq!(list[0]["mock_tree"], true, "{assets}");

    // Fetched in pieces, unpacked to the very tree the owner registered as the mock.
    let fetched = root.join("fetched");
    let out = pair.run_env(
        &["mock", "fetch", "model", "--out", fetched.to_str().unwrap()],
        &env,
    );
    assert!(
        out.status.success(),
        "mock fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry_core::tree::tree_sha256(&fetched).unwrap(),
        ferry_core::tree::tree_sha256(&mock).unwrap()
    );
    let again = pair.run_env(
        &["mock", "fetch", "model", "--out", fetched.to_str().unwrap()],
        &env,
    );
    assert!(
        !again.status.success(),
        "an existing --out is not overwritten"
    );
    // A disk too small for it: refused before anything is fetched, naming both sizes, nothing kept.
    let small = SmallDisk::mount(&root.join("small-disk"), 16 << 20);
    let refused = pair.run_env(
        &[
            "mock",
            "fetch",
            "model",
            "--out",
            small.path.join("model").to_str().unwrap(),
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("the mock of model is 70.0 MiB, a directory unpacked beside its archive")
            && err.contains("16.0 MiB free")
            && err.contains("nothing was fetched"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&small.path).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    drop(small);

    let script = root.join("list.py");
    std::fs::write(&script, LIST).unwrap();
    let mock_run = pair.run_env(
        &[
            "run",
            "--mock",
            "--asset",
            "model",
            "--out",
            root.join("mock-out").to_str().unwrap(),
            script.to_str().unwrap(),
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&mock_run.stdout);
    assert!(
        mock_run.status.success(),
        "run --mock: {}",
        String::from_utf8_lossy(&mock_run.stderr)
    );
    assert!(
        stdout.contains(&format!("model.safetensors {mock_shard}")),
        "{stdout}"
    );
    assert!(stdout.contains("tokenizer/vocab.txt 12"), "{stdout}");
    assert!(stdout.contains("layers 2\nread-only"), "{stdout}");

    // The whole flow, on the private folder.
    let job = {
        let path = root.join("job.py");
        std::fs::write(&path, LIST).unwrap();
        let out = pair.run_env(
            &[
                "submit",
                "--asset",
                "model",
                "--title",
                "list the model",
                path.to_str().unwrap(),
            ],
            &env,
        );
        assert!(
            out.status.success(),
            "submit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    pair.approve_run_and_release(&job);
    let out = pair.run_env(
        &["results", &job, "--wait", "--timeout", "600", "--json"],
        &env,
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stdout = shown[0]["result"]["stdout"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("model.safetensors {}", 2 << 20)),
        "{stdout}"
    );
    assert!(stdout.contains("layers 12\nread-only"), "{stdout}");
    assert_eq!(
        shown[0]["receipt"]["run"]["assets"][0]["version"],
        ferry_core::tree::tree_sha256(&private).unwrap()
    );
}

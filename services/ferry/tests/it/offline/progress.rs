//! Progress: drawn on a terminal, with honest totals; nothing in a pipe or with `--quiet`.

use crate::harness::Pair;

/// A high side with one asset whose mock is `mock_bytes` long.
fn with_asset(pair: &Pair, mock_bytes: usize) -> [String; 2] {
    let root = pair.dir.path();
    std::fs::write(root.join("private.csv"), "id,text\n1,secret\n").unwrap();
    std::fs::write(root.join("mock.csv"), "m".repeat(mock_bytes)).unwrap();
    [
        root.join("private.csv").to_str().unwrap().to_string(),
        root.join("mock.csv").to_str().unwrap().to_string(),
    ]
}

fn asset_add<'a>(pair: &'a Pair, files: &'a [String; 2]) -> Vec<&'a str> {
    vec![
        "asset",
        "add",
        "--config",
        pair.high_s(),
        "data.csv",
        "--private",
        &files[0],
        "--mock",
        &files[1],
    ]
}

#[test]
fn media_write_counts_each_byte_once() {
    let pair = Pair::create();
    let files = with_asset(&pair, 2 << 20);
    pair.ok(&asset_add(&pair, &files));
    pair.ok(&["export", "--config", pair.high_s()]);
    let outbox = pair.side_dir(&pair.high).join("outbox");
    let bundle = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bundle"))
        .unwrap();
    let size = std::fs::metadata(&bundle).unwrap().len();
    let medium = pair.dir.path().join("usb");
    std::fs::create_dir(&medium).unwrap();
    let (code, screen) = pair.on_terminal(
        &[
            "media",
            "write",
            "--config",
            pair.high_s(),
            medium.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{screen}");
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    assert!(
        screen.contains(&format!("{name}: {} copied and verified", mib(size))),
        "the file's size, once: {screen:?}"
    );
    assert!(screen.contains("verifying"), "{screen:?}");
    assert!(
        !screen.contains(&mib(2 * size)),
        "the read-back counted again: {screen:?}"
    );
}

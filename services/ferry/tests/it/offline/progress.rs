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
fn every_long_operation_shows_progress_on_a_terminal_only() {
    let pair = Pair::create();
    let files = with_asset(&pair, 3 << 20);

    let (code, screen) = pair.on_terminal(&asset_add(&pair, &files), &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("registering data.csv (private file 17 B, mock 3.0 MiB)"),
        "{screen:?}"
    );

    let (code, screen) = pair.on_terminal(&["export", "--config", pair.high_s()], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("\r\u{1b}[Kpacking a bundle for the low side"),
        "{screen:?}"
    );
    // What it packed, and how big it is.
    assert!(
        screen.contains("ferry: bundle 1 for the low side: the catalog of 1 asset(s); 3.0 MiB"),
        "{screen:?}"
    );
    let bundle = screen
        .lines()
        .find(|l| l.trim_end().ends_with(".bundle"))
        .unwrap()
        .trim()
        .to_string();

    // Splitting a bundle into parts, too.
    pair.ok(&asset_add(&pair, &files));
    let (code, screen) = pair.on_terminal(
        &[
            "export",
            "--config",
            pair.high_s(),
            "--max-part-size",
            "2MiB",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("splitting the bundle (3.0 MiB) into parts of at most 2.0 MiB"),
        "{screen:?}"
    );
    assert!(screen.contains("in 2 parts"), "{screen:?}");

    let (code, screen) = pair.on_terminal(&["import", "--config", pair.low_s(), &bundle], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("\r\u{1b}[Kimporting ferry-high-to-low-000001"),
        "{screen:?}"
    );

    // Not on a terminal: no progress, nothing redrawn; the export still says what it packed.
    let out = pair.run(&asset_add(&pair, &files));
    assert!(out.status.success());
    let out = pair.run(&["export", "--config", pair.high_s()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r') && !err.contains("packing"), "{err:?}");
    assert!(err.contains("the catalog of 1 asset(s)"), "{err}");

    // --quiet on a terminal: no progress either.
    let (code, screen) = pair.on_terminal(&["--quiet", "import", "--config", pair.low_s()], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("importing"), "{screen:?}");
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

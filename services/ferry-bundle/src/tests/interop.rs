//! The auditor's path: standard tools read a bundle without Ferry.

use super::*;

/// The spec promises that `tail -c +1025 | age -d` and openssl can check a bundle
/// without Ferry. Runs only where those tools are installed.
#[test]
fn auditor_can_use_age_and_openssl() {
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("age") || !have("openssl") || !have("sha256sum") || !have("xxd") {
        // CI installs them (scripts/prereqs): there, a missing tool is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "age, openssl, sha256sum and xxd must be installed in CI (scripts/prereqs)"
        );
        eprintln!("skipping: age, openssl, sha256sum or xxd is not installed");
        return;
    }
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    p.high.save(&tmp.path().join("keys")).unwrap();
    let bundle = tmp.path().join("b.ferry");
    let mut file = fs::File::create(&bundle).unwrap();
    let written = write_bundle(
        &mut file,
        &p.low,
        &p.high.public(),
        &params(),
        &[Entry {
            path: "hello.txt".into(),
            source: EntrySource::Bytes(b"hello"),
        }],
    )
    .unwrap();
    drop(file);

    let script = format!(
        r#"set -eu
cd '{dir}'
tail -c +1025 b.ferry | sha256sum | cut -d' ' -f1 > payload.sha256
tail -c +1025 b.ferry | age -d -i keys/age.key > plain.bin
head -c 8 plain.bin
HL=$(od -An -tu2 --endian=little -j10 -N2 b.ferry | tr -d ' ')
{{ printf 'ferry-bundle/v1 header\0'; head -c $((12 + HL)) b.ferry; }} > msg.bin
dd if=b.ferry of=sig.bin bs=1 skip=$((12 + HL)) count=64 status=none
{{ printf '\060\052\060\005\006\003\053\145\160\003\041\000'; printf '%s' '{key}' | xxd -r -p; }} > pub.der
openssl pkey -pubin -inform DER -in pub.der -out pub.pem
openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile sig.bin >/dev/null
echo ' signature-ok'
"#,
        dir = tmp.path().display(),
        key = hex::encode(p.low.public().signing),
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FERRYPL1 signature-ok\n"
    );
    let sha = fs::read_to_string(tmp.path().join("payload.sha256")).unwrap();
    assert_eq!(sha.trim(), hex::encode(written.header.payload_sha256));
}

//! The auditor's path: standard tools read a bundle without Ferry.

use super::*;

/// The spec promises that dd, sha256sum, split, `age -d` and openssl can check and open a
/// bundle without Ferry (section 7). Runs only where those tools are installed.
#[test]
fn auditor_can_use_age_and_openssl() {
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // A missing tool is a failure, never a skip: scripts/prereqs installs them.
    for tool in ["age", "openssl", "sha256sum", "xxd"] {
        assert!(
            have(tool),
            "{tool} is not installed: the auditor's recipe needs it (scripts/prereqs installs it)"
        );
    }
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    p.high.save(&tmp.path().join("keys")).unwrap();
    let bundle = tmp.path().join("b.ferry");
    let mut file = fs::File::create(&bundle).unwrap();
    // Several segments, so that the recipe's `split` has more than one to hash.
    let data = noise((3 << 20) + 7, 11);
    let written = write_bundle(
        &mut file,
        &p.low,
        &p.high.public(),
        &params(),
        &[Entry {
            path: "hello.bin".into(),
            source: EntrySource::Bytes(&data),
        }],
    )
    .unwrap();
    assert!(Layout::of(&written.header).unwrap().segments > 3);
    drop(file);

    let script = format!(
        r#"set -eu
cd '{dir}'
HL=$(od -An -tu2 --endian=little -j10 -N2 b.ferry | tr -d ' ')
TL=$(od -An -tu4 --endian=little -j12 -N4 b.ferry | tr -d ' ')
dd if=b.ferry of=table.bin bs=1 skip=1024 count=$TL status=none
sha256sum < table.bin | cut -d' ' -f1 > table.sha256
tail -c +$((1025 + TL)) b.ferry > payload.age
age -d -i keys/age.key payload.age > plain.bin
head -c 8 plain.bin
SO={so}
head -c $SO payload.age | sha256sum | cut -d' ' -f1 > segments.sha256
tail -c +$((SO + 1)) payload.age | split -b $(({k} * 65552)) --filter='sha256sum' | cut -d' ' -f1 >> segments.sha256
xxd -r -p segments.sha256 | cmp - table.bin
{{ printf 'ferry-bundle/v3 header\0'; head -c $((16 + HL)) b.ferry; }} > msg.bin
dd if=b.ferry of=sig.bin bs=1 skip=$((16 + HL)) count=64 status=none
{{ printf '\060\052\060\005\006\003\053\145\160\003\041\000'; printf '%s' '{key}' | xxd -r -p; }} > pub.der
openssl pkey -pubin -inform DER -in pub.der -out pub.pem
openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile sig.bin >/dev/null
echo ' signature-ok'
"#,
        dir = tmp.path().display(),
        key = hex::encode(p.low.public().signing),
        so = written.header.stream_offset,
        k = written.header.segment_chunks,
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
    let sha = fs::read_to_string(tmp.path().join("table.sha256")).unwrap();
    assert_eq!(sha.trim(), hex::encode(written.header.table_sha256));
    // age's plaintext is the record stream of section 3: the one entry, byte for byte.
    let plain = fs::read(tmp.path().join("plain.bin")).unwrap();
    let record = [
        &[TAG_ENTRY, 9, 0][..],
        b"hello.bin",
        &(data.len() as u64).to_le_bytes(),
    ]
    .concat();
    assert_eq!(&plain[8..8 + record.len()], &record[..]);
    assert!(plain[8 + record.len()..8 + record.len() + data.len()] == data[..]);
}

/// `age -d` (the Go reference implementation) decrypts our payloads whose plaintext ends
/// at, just before and just after a STREAM chunk boundary, and the empty plaintext.
#[test]
fn age_cli_decrypts_payloads_at_chunk_boundaries() {
    let have_age = std::process::Command::new("sh")
        .args(["-c", "command -v age"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_age,
        "age is not installed: this test decrypts with it (scripts/prereqs installs it)"
    );
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    p.high.save(&tmp.path().join("keys")).unwrap();
    let chunk = crate::age_v1::CHUNK_LEN;
    for size in [0, 1, chunk - 1, chunk, chunk + 1, 17 * chunk] {
        let plain = noise(size, size as u64 + 3);
        let mut out = Cursor::new(Vec::new());
        write_envelope(&mut out, &p.low, &p.high.public(), &params(), &plain).unwrap();
        let bundle = out.into_inner();
        let decrypted = age_decrypt(tmp.path(), &bundle);
        assert!(
            decrypted.status.success(),
            "size {size}: {}",
            String::from_utf8_lossy(&decrypted.stderr)
        );
        assert!(
            decrypted.stdout == plain,
            "size {size}: age -d gave other bytes"
        );
    }
}

//! `schemas/bundle-format.md` against the code: the worked example's hex and the postcard
//! field order in the spec's tables must match what this crate encodes, so that a change
//! to the wire types fails here until the spec changes with it.

use std::collections::BTreeMap;

use crate::format::{encode_header_block, encode_manifest, WireHeader, WireManifest};

use super::*;

const SPEC: &str = include_str!("../../../../schemas/bundle-format.md");

/// RFC 8032 section 7.1, test 1: a published Ed25519 key, so that readers can check the
/// example signatures with any Ed25519 implementation.
const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// The key of the worked example. Its age identity is unused.
fn example_keys() -> SideKeys {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(RFC8032_SECRET, &mut seed).unwrap();
    SideKeys {
        signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        age: age::x25519::Identity::generate(),
    }
}

/// The header of the worked example (spec section 10).
fn example_header(keys: &SideKeys) -> Header {
    Header {
        version: 3,
        bundle_id: [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ],
        channel: Channel::HighToLow,
        seq: 300,
        prev_hash: [0x11; 32],
        created_at: 1_700_000_000,
        expires_at: 1_700_086_400,
        signer: keys.public().signing,
        payload_len: 1_234_567,
        stream_offset: 184,
        segment_chunks: 16,
        table_sha256: [0x22; 32],
    }
}

/// The entries of the worked example.
const EXAMPLE_ENTRIES: &[(&str, &[u8])] = &[("hello.txt", b"hello\n"), ("results/out.csv", b"")];

/// Every example the spec shows, by the name on its fence (```` ```hex NAME ````), as this
/// crate encodes it today.
fn encoded_examples() -> BTreeMap<&'static str, Vec<u8>> {
    let keys = example_keys();
    let header = example_header(&keys);
    let block = encode_header_block(&header, &keys).unwrap();
    let header_len = usize::from(u16::from_le_bytes([block[10], block[11]]));
    assert_eq!(
        u32::from_le_bytes(block[12..16].try_into().unwrap()),
        96,
        "the example's table: segment 0 and 19 chunks in 2 segments"
    );
    let manifest: Vec<ManifestEntry> = EXAMPLE_ENTRIES
        .iter()
        .map(|(path, data)| manifest_entry(path, data))
        .collect();
    let manifest_bytes = encode_manifest(&header.bundle_id, &manifest).unwrap();
    let mut plaintext = Plaintext::new();
    for (path, data) in EXAMPLE_ENTRIES {
        plaintext = plaintext.entry(path, data);
    }
    let plaintext = plaintext.end(&keys, &header.bundle_id, EXAMPLE_ENTRIES);

    let mut examples = BTreeMap::new();
    examples.insert("header-fields", block[16..16 + header_len].to_vec());
    examples.insert("header-block", block[..16 + header_len + 64].to_vec());
    examples.insert("manifest", manifest_bytes);
    examples.insert("plaintext", plaintext.bytes);
    examples
}

/// Hex as the spec shows it: 16 space-separated bytes a line.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The spec's fenced blocks opened with ```` ```hex NAME ````, by name.
fn spec_hex_blocks() -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut lines = SPEC.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("```hex ") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.insert(name.trim().to_owned(), body.join("\n"));
        }
    }
    blocks
}

#[test]
fn spec_worked_example_matches_the_encoder() {
    let spec = spec_hex_blocks();
    let mut stale = Vec::new();
    for (name, bytes) in encoded_examples() {
        let ours = hex_lines(&bytes);
        let theirs = spec
            .get(name)
            .map(|s| s.split_whitespace().collect::<String>());
        if theirs.as_deref() != Some(hex::encode(&bytes).as_str()) {
            stale.push(format!(
                "schemas/bundle-format.md, block ```hex {name}, should read:\n{ours}"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "the wire encoding changed but the spec did not (or the reverse):\n\n{}",
        stale.join("\n\n")
    );
}

#[test]
fn spec_example_signatures_verify() {
    // The example's signatures are what the spec says they sign: an independent check of
    // the domain strings, not just a comparison with our own output.
    let keys = example_keys();
    let verifying = keys.signing.verifying_key();
    let examples = encoded_examples();
    let block = &examples["header-block"];
    let (signed, signature) = block.split_at(block.len() - 64);
    let mut message = b"ferry-bundle/v3 header\0".to_vec();
    message.extend_from_slice(signed);
    let signature = ed25519_dalek::Signature::from_slice(signature).unwrap();
    verifying.verify_strict(&message, &signature).unwrap();

    let manifest = &examples["manifest"];
    let plaintext = &examples["plaintext"];
    let signature = &plaintext[plaintext.len() - 64..];
    assert_eq!(
        &plaintext[plaintext.len() - 64 - manifest.len()..plaintext.len() - 64],
        &manifest[..]
    );
    let mut message = b"ferry-bundle/v3 manifest\0".to_vec();
    message.extend_from_slice(manifest);
    let signature = ed25519_dalek::Signature::from_slice(signature).unwrap();
    verifying.verify_strict(&message, &signature).unwrap();
    assert_eq!(
        hex::encode(verifying.to_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "RFC 8032 test 1 public key"
    );
}

/// The field names of a serializable struct, in serialization (wire) order.
fn field_order<T: serde::Serialize>(value: &T) -> Vec<String> {
    // serde_json writes struct fields in declaration order, which is postcard's wire order.
    let json = serde_json::to_string(value).unwrap();
    let mut names = Vec::new();
    let mut depth = 0;
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let text: String = chars.by_ref().take_while(|&c| c != '"').collect();
                if depth == 1 && chars.peek() == Some(&':') {
                    names.push(text);
                }
            }
            _ => {}
        }
    }
    names
}

/// The names in the second column of the table rows `| N | name | ...` in section 2.
fn spec_header_table() -> Vec<String> {
    let section = SPEC
        .split("## 2. Header fields")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the spec has section 2");
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() > 3 && cells[1].parse::<u32>().is_ok()).then(|| cells[2].to_owned())
        })
        .collect()
}

/// The names in the first column of the manifest table in section 3.3.
fn spec_manifest_table() -> Vec<String> {
    let table = SPEC
        .split("The **manifest** is the postcard encoding of:")
        .nth(1)
        .expect("the spec describes the manifest");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the column names and the separator
        .map(|line| line.split('|').nth(1).unwrap_or("").trim().to_owned())
        .collect()
}

#[test]
fn spec_tables_give_the_wire_field_order() {
    let keys = example_keys();
    let block = encode_header_block(&example_header(&keys), &keys).unwrap();
    let header_len = usize::from(u16::from_le_bytes([block[10], block[11]]));
    let wire: WireHeader = postcard::from_bytes(&block[16..16 + header_len]).unwrap();
    assert_eq!(spec_header_table(), field_order(&wire), "spec section 2");

    let manifest = encode_manifest(&[0; 16], &[manifest_entry("a", b"")]).unwrap();
    let wire: WireManifest = postcard::from_bytes(&manifest).unwrap();
    assert_eq!(
        spec_manifest_table(),
        field_order(&wire),
        "spec section 3.3"
    );
}

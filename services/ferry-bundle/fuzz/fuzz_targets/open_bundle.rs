//! Feeds arbitrary bytes to the bundle reader with the test vectors' keys; it must refuse
//! or accept, never panic, hang or allocate without bound.
//!
//! An input that starts with `FERRYPL1` is taken as a plaintext instead, and sealed in a
//! genuine envelope (signed by the vectors' sender, encrypted to their receiver) before it
//! is opened, so that the fuzzer reaches the record and manifest parser behind the
//! signature. Anything else is opened as a bundle file as it is.

#![no_main]

use std::io::Cursor;
use std::path::Path;
use std::sync::LazyLock;

use ferry_bundle::{
    inspect, open, seal_plaintext_for_fuzzing, verify_bundle, Channel, HeaderParams, Limits,
    MemorySink, OpenOptions, PublicIdentity, SideKeys, PAYLOAD_MAGIC,
};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    sender: SideKeys,
    receiver: SideKeys,
    receiver_public: PublicIdentity,
    signer: [u8; 32],
    params: HeaderParams,
    limits: Limits,
}

/// The test-only keys in `tests/vectors/keys/`, loaded once.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/keys");
    let sender = SideKeys::load(&keys.join("sender")).expect("vector sender keys");
    let receiver = SideKeys::load(&keys.join("receiver")).expect("vector receiver keys");
    Fixture {
        signer: sender.public().signing,
        receiver_public: receiver.public(),
        sender,
        receiver,
        // The vectors' header, so that their plaintexts' manifests match it.
        params: HeaderParams {
            bundle_id: *b"ferry-test-vecs!",
            channel: Channel::LowToHigh,
            seq: 7,
            prev_hash: [3; 32],
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
        },
        // Small limits, so that the limit checks are reachable with small inputs.
        limits: Limits {
            max_entries: 16,
            max_entry_len: 1 << 20,
            max_total_len: 2 << 20,
            max_path_len: 64,
        },
    }
});

fn open_all(f: &Fixture, bundle: &[u8]) {
    let _ = inspect(bundle);
    let _ = verify_bundle(Cursor::new(bundle), &f.signer);
    let mut sink = MemorySink::new(4 << 20);
    let opened = open(
        Cursor::new(bundle),
        OpenOptions::new(f.signer, &[&f.receiver], &mut sink).limits(f.limits.clone()),
    );
    // A refused bundle commits nothing.
    assert!(opened.is_ok() || sink.entries.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if data.starts_with(PAYLOAD_MAGIC) {
        let sealed = seal_plaintext_for_fuzzing(&f.sender, &f.receiver_public, &f.params, data)
            .expect("sealing in memory cannot fail");
        open_all(f, &sealed);
    } else {
        open_all(f, data);
    }
});

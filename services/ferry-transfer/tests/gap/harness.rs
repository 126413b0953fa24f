//! Two sides that trust each other, in a temporary directory, and the steps between them: export, carry (copy into
//! the other side's inbox, as a courier would), import; and forged bundles signed with a real side's keys.

use std::path::{Path, PathBuf};

use ferry_bundle::{Channel, Entry, EntrySource, HeaderParams, PublicIdentity, SideKeys};
use ferry_core::records::{Batch, Record};
use ferry_core::store::AssetRow;
use ferry_core::Side;
use ferry_transfer::import::{ImportOptions, ImportOutcome};
use ferry_transfer::{export, import, quarantine, setup, SideDir};

/// Never dialled: these tests use no broker.
const UNUSED_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The job uid `asset add` names in its messages (the sandbox's; nothing runs here).
const JOB_UID: u32 = 65534;

/// A low and a high side, keys pinned both ways.
pub struct Sides {
    /// Holds everything on disk.
    pub dir: tempfile::TempDir,
    /// The low side.
    pub low: SideDir,
    /// The high side.
    pub high: SideDir,
}

impl Sides {
    /// Two fresh sides (`setup::init`), each pinning the other's `public.txt` (`setup::trust_add`).
    pub fn create() -> Sides {
        let dir = tempfile::tempdir().expect("tempdir");
        let low = setup::init(Side::Low, &dir.path().join("low"), UNUSED_AMQP).expect("init low");
        let high =
            setup::init(Side::High, &dir.path().join("high"), UNUSED_AMQP).expect("init high");
        let low_side = SideDir::open(&low.config_file).expect("open low");
        let high_side = SideDir::open(&high.config_file).expect("open high");
        setup::trust_add(&low_side, &high.public_file).expect("low pins high");
        setup::trust_add(&high_side, &low.public_file).expect("high pins low");
        Sides {
            dir,
            low: low_side,
            high: high_side,
        }
    }

    /// One of the two sides.
    pub fn side(&mut self, side: Side) -> &mut SideDir {
        match side {
            Side::Low => &mut self.low,
            Side::High => &mut self.high,
        }
    }

    /// Registers an asset on the high side with a mock of `mock` (`setup::asset_add`).
    pub fn add_asset(&mut self, name: &str, mock: &[u8]) -> AssetRow {
        let private = self.dir.path().join(format!("{name}.private"));
        let mock_file = self.dir.path().join(format!("{name}.mock"));
        std::fs::write(&private, "id,text,source\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&mock_file, mock).unwrap();
        setup::asset_add(
            &mut self.high,
            name,
            &private,
            &mock_file,
            "test data",
            &[],
            JOB_UID,
        )
        .expect("asset add")
    }

    /// Exports everything pending on `from` (`export::export`) and returns the bundle copied into a transit
    /// directory, as a courier carries it; `None` when nothing was pending.
    pub fn export(&mut self, from: Side) -> Option<PathBuf> {
        let exported = export::export(self.side(from)).expect("export")?;
        Some(self.transit(&exported.path))
    }

    /// A copy of `file` in the transit directory.
    pub fn transit(&self, file: &Path) -> PathBuf {
        let transit = self.dir.path().join("transit");
        std::fs::create_dir_all(&transit).unwrap();
        let target = transit.join(file.file_name().unwrap());
        std::fs::copy(file, &target).unwrap();
        target
    }

    /// Imports one named file into `to` (`import::import_files`).
    pub fn import(&mut self, to: Side, file: &Path) -> ImportOutcome {
        self.import_with(to, file, ImportOptions::default())
    }

    /// Carries `file` into `to`'s inbox (as a courier does) and imports it there, by name, with `options`.
    pub fn import_with(&mut self, to: Side, file: &Path, options: ImportOptions) -> ImportOutcome {
        let carried = self.side(to).layout.inbox().join(file.file_name().unwrap());
        std::fs::rename(file, &carried).unwrap();
        let mut results =
            import::import_files(self.side(to), std::slice::from_ref(&carried), options)
                .expect("import_files");
        assert_eq!(results.len(), 1, "one file, one outcome");
        let (path, outcome) = results.pop().unwrap();
        assert_eq!(path, carried);
        assert!(!carried.exists(), "an imported file leaves the inbox");
        outcome
    }

    /// Exports from `from`, copies the bundle into `to`'s inbox and imports the inbox (`import::inbox_files`);
    /// returns the accepted bundle's summary, or `None` when nothing was pending. Panics on a refusal.
    pub fn carry(&mut self, from: Side, to: Side) -> Option<String> {
        let bundle = self.export(from)?;
        let inbox = self.side(to).layout.inbox();
        std::fs::rename(&bundle, inbox.join(bundle.file_name().unwrap())).unwrap();
        let files = import::inbox_files(self.side(to), false).expect("inbox_files");
        assert_eq!(files.len(), 1, "{files:?}");
        let mut results = import::import_files(self.side(to), &files, ImportOptions::default())
            .expect("import_files");
        let (_, outcome) = results.pop().unwrap();
        assert!(
            import::inbox_files(self.side(to), false)
                .unwrap()
                .is_empty(),
            "the inbox is empty after an import"
        );
        Some(accepted(outcome))
    }

    /// The last sequence number `side` imported on the channel it receives on.
    pub fn last_imported(&self, side: Side) -> u64 {
        let dir = self.get(side);
        dir.store.channel_in(side.incoming()).unwrap().0.get()
    }

    /// The sequence numbers below the last imported one that never arrived at `side` (`ferry status`'s
    /// `missing`).
    pub fn missing(&self, side: Side) -> Vec<u64> {
        let dir = self.get(side);
        seqs(dir.store.missing_seqs(side.incoming()).unwrap())
    }

    /// What the other side reported missing of what `side` sent (`ferry status`'s `reported_missing`).
    pub fn reported_missing(&self, side: Side) -> Vec<u64> {
        let dir = self.get(side);
        seqs(dir.store.peer_missing(side.outgoing()).unwrap())
    }

    /// What `side` sent that the other side has not acknowledged (`ferry status`'s `unacknowledged`).
    pub fn unacknowledged(&self, side: Side) -> Vec<u64> {
        let dir = self.get(side);
        let (last, _) = dir.store.channel_out(side.outgoing()).unwrap();
        let acked = seqs(dir.store.acked_seqs(side.outgoing()).unwrap());
        (1..=last.get()).filter(|s| !acked.contains(s)).collect()
    }

    fn get(&self, side: Side) -> &SideDir {
        match side {
            Side::Low => &self.low,
            Side::High => &self.high,
        }
    }

    /// The names of the assets the low side knows.
    pub fn assets_on_low(&self) -> Vec<String> {
        self.low
            .store
            .assets()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect()
    }
}

fn seqs(list: Vec<ferry_core::Seq>) -> Vec<u64> {
    list.into_iter().map(|s| s.get()).collect()
}

/// The summary of an accepted import; panics with the refusal otherwise.
pub fn accepted(outcome: ImportOutcome) -> String {
    match outcome {
        ImportOutcome::Accepted(summary) => summary,
        ImportOutcome::AlreadyImported(summary) => {
            panic!("already imported, wanted new: {summary}")
        }
        ImportOutcome::Refused {
            refusal,
            quarantined,
        } => panic!(
            "refused ({}): {refusal}; quarantined as {}",
            refusal.kind(),
            quarantined.display()
        ),
    }
}

/// Asserts that `outcome` is a refusal of exactly `kind`, that the file is in quarantine and that its `.reason`
/// file records the same kind; returns where the file is now.
pub fn assert_refused(outcome: ImportOutcome, kind: &str) -> PathBuf {
    let (refusal, quarantined) = match outcome {
        ImportOutcome::Refused {
            refusal,
            quarantined,
        } => (refusal, quarantined),
        ImportOutcome::Accepted(summary) | ImportOutcome::AlreadyImported(summary) => {
            panic!("accepted, wanted {kind}: {summary}")
        }
    };
    assert_eq!(refusal.kind(), kind, "{refusal}");
    assert!(
        quarantined.exists(),
        "{} is not in quarantine",
        quarantined.display()
    );
    assert_eq!(
        quarantined.parent().and_then(|p| p.file_name()),
        Some(std::ffi::OsStr::new("quarantine"))
    );
    let reason = std::fs::read_to_string(quarantine::reason_file(&quarantined)).unwrap();
    let mut lines = reason.lines();
    assert_eq!(
        lines.next(),
        Some(format!("refused: {kind}").as_str()),
        "{reason}"
    );
    assert_eq!(
        lines.next(),
        Some(format!("reason: {refusal}").as_str()),
        "{reason}"
    );
    assert_eq!(
        quarantine::recorded_kind(&quarantined).as_deref(),
        Some(kind)
    );
    quarantined
}

/// Bundles high → low that are authentic (signed by a key the low side pinned) but wrong in some other way: only a
/// real side's keys can make those.
pub struct Forge {
    keys: SideKeys,
    to: PublicIdentity,
    dir: PathBuf,
}

impl Forge {
    /// Signs with the high side's current keys, encrypts to the low side.
    pub fn high_to_low(sides: &Sides) -> Forge {
        Forge::with_keys(sides, sides.high.keys().unwrap())
    }

    /// Signs with `keys` (say, keys the high side has since retired), encrypts to the low side.
    pub fn with_keys(sides: &Sides, keys: SideKeys) -> Forge {
        Forge {
            keys,
            to: sides.low.keys().unwrap().public(),
            dir: sides.dir.path().to_path_buf(),
        }
    }

    /// A valid header for sequence `seq` on high-to-low, made now, expiring in an hour.
    pub fn params(&self, seq: u64) -> HeaderParams {
        let now = ferry_core::now();
        HeaderParams {
            bundle_id: ferry_bundle::new_bundle_id(),
            channel: Channel::HighToLow,
            seq,
            prev_hash: [0; 32],
            created_at: now,
            expires_at: now + 3600,
        }
    }

    /// A bundle named `name` with `records` and the `extra` entries.
    pub fn bundle(
        &self,
        name: &str,
        params: HeaderParams,
        records: Vec<Record>,
        extra: &[(&str, &[u8])],
    ) -> PathBuf {
        let bytes = Batch { records }.encode();
        let mut entries = vec![Entry {
            path: ferry_core::records::RECORDS_ENTRY.into(),
            source: EntrySource::Bytes(&bytes),
        }];
        for (path, data) in extra {
            entries.push(Entry {
                path: path.to_string(),
                source: EntrySource::Bytes(data),
            });
        }
        let path = self.dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        ferry_bundle::write_bundle(file, &self.keys, &self.to, &params, &entries).unwrap();
        path
    }
}

/// A batch holding one empty acknowledgement: valid on either side.
pub fn ack() -> Vec<Record> {
    vec![Record::Ack {
        received: vec![],
        missing: vec![],
    }]
}

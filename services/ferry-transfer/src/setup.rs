//! Making a side: its directory and keys (`ferry init`), pinning the other side (`ferry trust add`), and the
//! high side's asset catalog (`ferry asset add`).

use std::path::{Path, PathBuf};

use ferry_bundle::{PublicIdentity, SideKeys};
use ferry_core::store::AssetRow;
use ferry_core::{names, Config, Side, Store};

use crate::error::{IoContext, Result, TransferError};
use crate::fs::write_atomically;
use crate::side_dir::{Layout, SideDir};

/// A side just made by [`init`].
pub struct Initialised {
    /// Its directory, absolute.
    pub dir: PathBuf,
    /// Its configuration file.
    pub config_file: PathBuf,
    /// Its public identity's file, to hand to the other side.
    pub public_file: PathBuf,
    /// Its key id.
    pub key_id: String,
}

/// Creates a side in `dir`: the directories, keys (0600), `public.txt`, the state store and `ferry.toml`. Refuses
/// to touch a directory that already has a configuration.
pub fn init(side: Side, dir: &Path, amqp: &str) -> Result<Initialised> {
    let config_path = Layout::new(dir).config_file();
    if config_path.exists() {
        return Err(TransferError::Invalid(format!(
            "{} exists already: refusing to overwrite a side's configuration and keys",
            config_path.display()
        )));
    }
    std::fs::create_dir_all(dir).at("creating", dir)?;
    let dir = dir.canonicalize().at("resolving", dir)?;
    let layout = Layout::new(&dir);
    let config = Config::new(side, &dir, amqp);
    for d in layout.all_dirs() {
        std::fs::create_dir_all(&d).at("creating", &d)?;
    }
    // The secret keys' directory is the side's alone (its files are 0600 too).
    {
        use std::os::unix::fs::PermissionsExt;
        let keys_dir = layout.keys_dir();
        std::fs::set_permissions(&keys_dir, std::fs::Permissions::from_mode(0o700))
            .at("restricting", &keys_dir)?;
    }
    let keys = SideKeys::generate();
    keys.save(&layout.keys_dir()).map_err(|e| {
        TransferError::bundle(
            format!("writing keys into {}", layout.keys_dir().display()),
            e,
        )
    })?;
    let public = keys.public();
    write_atomically(
        &layout.public_file(),
        public.to_text(side.as_str()).as_bytes(),
    )?;
    Store::open(&layout.state_db())?;
    write_atomically(&layout.config_file(), config.to_toml().as_bytes())?;
    Ok(Initialised {
        config_file: layout.config_file(),
        public_file: layout.public_file(),
        dir,
        key_id: public.key_id(),
    })
}

/// Pins the other side's identity read from `peer_file`. Pinning the same identity again is a no-op; replacing a
/// pinned one is refused (that is a key rotation).
pub fn trust_add(side: &SideDir, peer_file: &Path) -> Result<PublicIdentity> {
    let text = std::fs::read_to_string(peer_file).at("reading", peer_file)?;
    let peer = PublicIdentity::parse(&text)
        .map_err(|e| TransferError::bundle(format!("parsing {}", peer_file.display()), e))?;
    let own = side.keys()?.public();
    if own.signing == peer.signing {
        return Err(TransferError::Invalid(format!(
            "{} is this side's own identity: pin the other side's public.txt",
            peer_file.display()
        )));
    }
    if let Ok(existing) = side.peer() {
        if existing != peer {
            return Err(TransferError::Invalid(format!(
                "a different peer ({}) is pinned already in {}; replacing a pinned key is a key rotation, not a trust add",
                existing.key_id(),
                side.layout.peer_file().display()
            )));
        }
    }
    write_atomically(
        &side.layout.peer_file(),
        peer.to_text(side.config.side.peer().as_str()).as_bytes(),
    )?;
    Ok(peer)
}

/// Registers (or replaces) an asset on the high side: the private file stays where it is (it must be readable by
/// `job_uid`, the sandbox's unprivileged user); the mock is copied into the mock store by content hash and
/// travels with the next export.
pub fn asset_add(
    side: &mut SideDir,
    name: &str,
    private: &Path,
    mock: &Path,
    description: &str,
    canaries: &[String],
    job_uid: u32,
) -> Result<AssetRow> {
    side.require(Side::High, "`ferry asset add`")?;
    names::asset(name).map_err(|e| TransferError::Invalid(e.to_string()))?;
    for c in canaries {
        ferry_review::checks::Canary::new(name, c)
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
    }
    let private = private
        .canonicalize()
        .at("resolving the private file", private)?;
    let private_meta = std::fs::metadata(&private).at("reading", &private)?;
    let tree = private_meta.is_dir();
    if tree {
        crate::tree::check_private_tree(&private, job_uid)?;
    } else if !private_meta.is_file() {
        return Err(TransferError::Invalid(format!(
            "private asset {} is neither a regular file nor a directory",
            private.display()
        )));
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = private_meta.permissions().mode();
        if mode & 0o004 == 0 {
            return Err(TransferError::Invalid(format!(
                "private file {} is not readable by others (mode {:o}): sandboxed jobs run as an unprivileged user \
                 (uid {job_uid}); `chmod o+r` the file and keep its directory closed (0700) instead",
                private.display(),
                mode & 0o777,
            )));
        }
    }
    let mock_meta = std::fs::metadata(mock).at("reading the mock", mock)?;
    if mock_meta.is_dir() != tree {
        return Err(TransferError::Invalid(format!(
            "the private asset is a {} but the mock {} is {}: a job reads both the same way, so they must be alike",
            if tree { "directory" } else { "file" },
            mock.display(),
            if mock_meta.is_dir() { "a directory" } else { "not" }
        )));
    }
    // The mock is copied into the store (a directory as its archive) in pieces, hashed on the way: never held in
    // memory, whatever its size.
    std::fs::create_dir_all(side.layout.mocks_dir()).at("creating", &side.layout.mocks_dir())?;
    let staging = side
        .layout
        .mocks_dir()
        .join(format!(".incoming-{}", uuid::Uuid::new_v4()));
    let copied = (|| -> Result<(u64, String)> {
        let file = std::fs::File::create(&staging).at("creating", &staging)?;
        let mut out =
            ferry_core::tree::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        if tree {
            crate::tree::pack_mock_tree(mock, &mut out)?;
        } else {
            let mut input = std::fs::File::open(mock).at("opening the mock", mock)?;
            std::io::copy(&mut input, &mut out).at("copying the mock", mock)?;
        }
        let (len, sha256, writer) = out.finish();
        let file = writer
            .into_inner()
            .map_err(|e| TransferError::io("writing", &staging, e.into_error()))?;
        file.sync_all().at("syncing", &staging)?;
        Ok((len, sha256))
    })();
    let (mock_size, sha256) = match copied {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    let mock_path = side.layout.mock_file(&sha256);
    if let Err(e) = std::fs::rename(&staging, &mock_path).at("storing the mock as", &mock_path) {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    // The catalog row committed next must not name a file a crash could lose.
    crate::fs::sync_dir(&side.layout.mocks_dir())?;
    let row = AssetRow {
        name: name.to_string(),
        description: description.to_string(),
        private_path: Some(private.display().to_string()),
        mock_path: mock_path.display().to_string(),
        mock_size,
        mock_sha256: sha256,
        updated_at: ferry_core::now(),
        mock_tree: tree,
    };
    // The echo index the disclosure checks need, built now, once per version of the asset, so that no job's
    // checks wait for it.
    let index = crate::review::build_echo_index(&side.layout, name, &private, &side.config.review)?;
    // The asset's version, which run receipts name: the private content's hash, which the index build computed
    // for a file as it read it (one pass over the file, not two); a tree hash for a directory.
    let version = if tree {
        ferry_core::tree::tree_sha256(&private)
            .map_err(|e| TransferError::Invalid(format!("hashing the private asset: {e}")))?
    } else {
        index.asset_sha256
    };
    let tx = side.store.begin(Side::High)?;
    tx.put_asset(&row)?;
    tx.set_asset_version(name, &version)?;
    for c in canaries {
        tx.add_canary(name, c)?;
    }
    tx.commit()?;
    Ok(row)
}

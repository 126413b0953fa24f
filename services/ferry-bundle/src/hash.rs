//! SHA-256 for bulk data.
//!
//! A bundle hashes every byte once: the payload's ciphertext, per segment, for the signed
//! segment table, on the helper thread that encrypts or decrypts that segment (writing,
//! chunk by chunk while each is still in its cache).

/// SHA-256 (FIPS 180-4) for bulk data: `sha2`, or ring's assembly with the `ring-sha256`
/// feature. Both give the same digests; only the speed differs.
#[derive(Clone)]
pub(crate) struct Sha256(
    #[cfg(not(feature = "ring-sha256"))] sha2::Sha256,
    #[cfg(feature = "ring-sha256")] ring::digest::Context,
);

impl Sha256 {
    pub(crate) fn new() -> Sha256 {
        #[cfg(not(feature = "ring-sha256"))]
        return Sha256(<sha2::Sha256 as sha2::Digest>::new());
        #[cfg(feature = "ring-sha256")]
        return Sha256(ring::digest::Context::new(&ring::digest::SHA256));
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        #[cfg(not(feature = "ring-sha256"))]
        sha2::Digest::update(&mut self.0, data);
        #[cfg(feature = "ring-sha256")]
        self.0.update(data);
    }

    pub(crate) fn finalize(self) -> [u8; 32] {
        #[cfg(not(feature = "ring-sha256"))]
        return sha2::Digest::finalize(self.0).into();
        #[cfg(feature = "ring-sha256")]
        {
            let mut out = [0u8; 32];
            out.copy_from_slice(self.0.finish().as_ref());
            out
        }
    }

    /// The digest of one byte string.
    pub(crate) fn digest(data: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(data);
        hasher.finalize()
    }
}

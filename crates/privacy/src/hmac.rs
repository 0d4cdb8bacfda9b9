//! HMAC-SHA256 (RFC 2104) with the key's pads absorbed once, so each value costs two
//! compressions plus its own length: the `hash` method keeps equal values joinable while a
//! value cannot be guessed back without the tenant's secret (a plain salted hash of an email
//! can be, by hashing candidate emails).

use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

/// A keyed hasher for one tenant secret.
#[derive(Clone)]
pub struct Keyed {
    inner: Sha256,
    outer: Sha256,
}

impl Keyed {
    /// Prepares HMAC-SHA256 under `key` (any length; longer than a block is hashed first).
    pub fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut hasher = Sha256::new();
            hasher.update(block.map(|b| b ^ byte));
            hasher
        };
        Self {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// The MAC of `message`.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// The MAC of `message` in lowercase hex.
    pub fn hex(&self, message: &[u8]) -> String {
        const_hex::encode(self.mac(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_cases() {
        // Test case 2: key "Jefe".
        assert_eq!(
            Keyed::new(b"Jefe").hex(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            Keyed::new(&[0xaa; 131]).hex(b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}

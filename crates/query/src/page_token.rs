//! Opaque, tamper-checked page tokens for keyset paging.
//!
//! A token carries the position after the last returned event (its time and id), the sort
//! order, and a digest of the filter it was issued for, signed with HMAC-SHA256 under the
//! configured secret. A token that was altered, truncated, or replayed with another filter or
//! order is refused with a clear message instead of silently returning the wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
const FILTER_DIGEST_BYTES: usize = 16;

/// Where the next page starts: strictly after this (time, event id) in the query's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Event time of the last event returned, ns since the epoch.
    pub event_time_ns: i64,
    /// Event id of the last event returned.
    pub event_id: String,
}

/// Why a page token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not a token this service issued, or altered since.
    #[error("page_token is not valid: pass back next_page_token unchanged")]
    Invalid,
    /// Issued for another filter or sort order.
    #[error(
        "page_token belongs to a different filter or order_by_time: keep the query unchanged while paging"
    )]
    OtherQuery,
}

/// Signs and checks tokens with one secret; every query replica must share it.
pub struct PageTokens {
    key: Vec<u8>,
}

impl PageTokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    /// A token for the page after `cursor` of the query identified by `query_digest`.
    pub fn issue(&self, cursor: &Cursor, query_digest: &[u8; 32]) -> String {
        let mut body = vec![VERSION];
        body.extend_from_slice(&query_digest[..FILTER_DIGEST_BYTES]);
        body.extend_from_slice(&cursor.event_time_ns.to_be_bytes());
        body.extend_from_slice(cursor.event_id.as_bytes());
        let mac = hmac_sha256(&self.key, &body);
        body.extend_from_slice(&mac[..MAC_BYTES]);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The cursor in `token`, if it is genuine and was issued for `query_digest`.
    pub fn open(&self, token: &str, query_digest: &[u8; 32]) -> Result<Cursor, PageTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Invalid)?;
        let header = 1 + FILTER_DIGEST_BYTES + 8;
        if bytes.len() < header + MAC_BYTES || bytes[0] != VERSION {
            return Err(PageTokenError::Invalid);
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
        let expected = hmac_sha256(&self.key, body);
        if !constant_time_eq(mac, &expected[..MAC_BYTES]) {
            return Err(PageTokenError::Invalid);
        }
        if body[1..=FILTER_DIGEST_BYTES] != query_digest[..FILTER_DIGEST_BYTES] {
            return Err(PageTokenError::OtherQuery);
        }
        let time: [u8; 8] = body[1 + FILTER_DIGEST_BYTES..header]
            .try_into()
            .expect("eight bytes");
        let event_id =
            String::from_utf8(body[header..].to_vec()).map_err(|_| PageTokenError::Invalid)?;
        Ok(Cursor {
            event_time_ns: i64::from_be_bytes(time),
            event_id,
        })
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|byte| byte ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block_key.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            event_time_ns: 1_764_000_000_123_456_789,
            event_id: "évent/1 ?".into(),
        }
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn a_token_round_trips_for_its_own_query() {
        let tokens = PageTokens::new("secret");
        let digest = [7u8; 32];
        let token = tokens.issue(&cursor(), &digest);
        assert_eq!(tokens.open(&token, &digest), Ok(cursor()));
    }

    #[test]
    fn altered_foreign_or_garbage_tokens_are_refused() {
        let tokens = PageTokens::new("secret");
        let digest = [7u8; 32];
        let token = tokens.issue(&cursor(), &digest);

        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[20] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(tokens.open(&altered, &digest), Err(PageTokenError::Invalid));
        assert_eq!(
            tokens.open(&token, &[8u8; 32]),
            Err(PageTokenError::OtherQuery)
        );
        assert_eq!(
            PageTokens::new("other").open(&token, &digest),
            Err(PageTokenError::Invalid)
        );
        for garbage in ["", "!!!", "AAAA", &token[..token.len() - 2]] {
            assert_eq!(
                tokens.open(garbage, &digest),
                Err(PageTokenError::Invalid),
                "{garbage}"
            );
        }
    }
}

//! C2SP signed notes with Ed25519 keys: the envelope of every checkpoint.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
//! `— <key name> <base64(key id ‖ signature)>`. The key id is the first 4 bytes of
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`. Verifier keys are written
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>`; signer keys
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>` (the Go `note` package's forms).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hash::to_hex;

/// The signature-type byte of Ed25519 in signed notes.
const ALGORITHM_ED25519: u8 = 1;
/// What starts every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key or a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The key text is not in the signed-note form.
    #[error("malformed {0} key (want {1})")]
    MalformedKey(&'static str, &'static str),
    /// A key name must be non-empty, without `+` or white space.
    #[error("key name {0:?} is not allowed: it must be non-empty, without '+' or spaces")]
    BadKeyName(String),
    /// The note is not text, a blank line and signature lines.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// A signature by a known key does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    /// No signature by any of the trusted keys.
    #[error("the note carries no signature by a trusted key")]
    Unverified,
    /// The system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
}

/// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`.
fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALGORITHM_ED25519]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    let ok = !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace);
    ok.then_some(())
        .ok_or_else(|| NoteError::BadKeyName(name.to_owned()))
}

/// Decodes `base64(0x01 ‖ 32 bytes)`.
fn decode_key_bytes(text: &str) -> Option<[u8; 32]> {
    let bytes = BASE64.decode(text).ok()?;
    let (&algorithm, key) = bytes.split_first()?;
    (algorithm == ALGORITHM_ED25519).then(|| key.try_into().ok())?
}

fn encode_key_bytes(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALGORITHM_ED25519);
    bytes.extend_from_slice(key);
    BASE64.encode(bytes)
}

/// A log's signing key.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        write!(f, "SignerKey({})", self.verifier())
    }
}

impl SignerKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        Ok(Self::from_seed(name, seed))
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, &key.verifying_key());
        Self {
            name: name.to_owned(),
            key,
            id,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64>`, checking the id against the key.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        const FORM: &str = "PRIVATE+KEY+<name>+<hex key id>+<base64 key>";
        let malformed = || NoteError::MalformedKey("signer", FORM);
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(malformed)?;
        // Names hold no '+', base64 may: split from the left.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(encoded)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        check_name(name)?;
        let seed = decode_key_bytes(encoded).ok_or_else(malformed)?;
        let key = Self::from_seed(name, seed);
        (to_hex(&key.id) == id).then_some(key).ok_or_else(malformed)
    }

    /// The key in its text form, a secret.
    pub fn to_secret_string(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            to_hex(&self.id),
            encode_key_bytes(self.key.as_bytes())
        )
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to give to verifiers.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The signature line this key puts under `text`.
    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = self.id.to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes))
    }
}

/// A log's public key, as verifiers hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl VerifierKey {
    /// Parses `<name>+<hex id>+<base64>`, checking the id against the key.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        const FORM: &str = "<name>+<hex key id>+<base64 key>";
        let malformed = || NoteError::MalformedKey("verifier", FORM);
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(encoded)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        check_name(name)?;
        let bytes = decode_key_bytes(encoded).ok_or_else(malformed)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| malformed())?;
        let parsed = Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        };
        (to_hex(&parsed.id) == id)
            .then_some(parsed)
            .ok_or_else(malformed)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            to_hex(&self.id),
            encode_key_bytes(self.key.as_bytes())
        )
    }
}

/// Signs `text` (which must end in a newline) with every key, in order.
pub fn sign_note(text: &str, keys: &[SignerKey]) -> Result<String, NoteError> {
    if !text.ends_with('\n') || text.contains("\n\n") || text.is_empty() {
        return Err(NoteError::Malformed(
            "the text must end in a newline and hold no blank line",
        ));
    }
    let mut note = format!("{text}\n");
    for key in keys {
        note.push_str(&key.signature_line(text));
    }
    Ok(note)
}

/// A note whose signature by at least one trusted key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text, with its final newline.
    pub text: String,
    /// Names of the trusted keys whose signatures verified.
    pub verified_by: Vec<String>,
}

/// Checks `note` against `trusted` keys: every signature by a trusted key (same name and key
/// id) must verify and at least one must be present; signatures by other keys are ignored.
pub fn open_note(note: &str, trusted: &[VerifierKey]) -> Result<OpenedNote, NoteError> {
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("no signature lines"));
    }
    let mut verified_by = Vec::new();
    for line in signatures.lines() {
        let (name, encoded) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(NoteError::Malformed(
                "a signature line is not '— <name> <base64>'",
            ))?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if bytes.len() < 4 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let Some(key) = trusted
            .iter()
            .find(|key| key.name == name && key.id == bytes[..4])
        else {
            continue;
        };
        let signature = Signature::from_slice(&bytes[4..])
            .map_err(|_| NoteError::BadSignature(name.to_owned()))?;
        key.key
            .verify(text.as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature(name.to_owned()))?;
        verified_by.push(name.to_owned());
    }
    if verified_by.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok(OpenedNote {
        text: text.to_owned(),
        verified_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let signer = SignerKey::generate("chaukas.localhost").unwrap();
        let again = SignerKey::parse(&signer.to_secret_string()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = VerifierKey::parse(&signer.verifier().to_string()).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert!(format!("{signer:?}").contains("chaukas.localhost+"));
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_keys_are_refused() {
        let text = SignerKey::generate("a").unwrap().verifier().to_string();
        let (rest, _) = text.rsplit_once('+').unwrap();
        assert!(VerifierKey::parse(&format!("{rest}+AAAA")).is_err());
        let wrong_id = text.replacen("+", "+0", 1);
        assert!(VerifierKey::parse(&wrong_id).is_err());
        assert!(VerifierKey::parse(&text.replacen('a', "b", 1)).is_err());
        assert!(SignerKey::generate("has space").is_err());
        assert!(SignerKey::generate("").is_err());
        assert!(SignerKey::parse(&text).is_err());
    }

    #[test]
    fn notes_verify_only_under_their_keys_and_unchanged() {
        let old = SignerKey::generate("log.example").unwrap();
        let new = SignerKey::generate("log.example").unwrap();
        let note = sign_note("log.example/t\n3\nAAAA\n", &[old.clone(), new.clone()]).unwrap();
        let opened = open_note(&note, &[new.verifier()]).unwrap();
        assert_eq!(opened.text, "log.example/t\n3\nAAAA\n");
        assert_eq!(opened.verified_by, vec!["log.example"]);
        assert_eq!(
            open_note(&note, &[old.verifier(), new.verifier()])
                .unwrap()
                .verified_by
                .len(),
            2
        );

        let stranger = SignerKey::generate("log.example").unwrap();
        assert_eq!(
            open_note(&note, &[stranger.verifier()]),
            Err(NoteError::Unverified)
        );
        let changed = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            open_note(&changed, &[old.verifier()]),
            Err(NoteError::BadSignature(_))
        ));
        assert!(open_note("no signatures\n", &[old.verifier()]).is_err());
        assert!(sign_note("no newline", &[old]).is_err());
    }
}

//! Detectors of personal data and secrets in free text, without regular expressions: one
//! pass over the bytes finds candidates, and each candidate is checked the way its kind is
//! defined (Luhn for payment cards, ISO 13616 mod-97 for IBANs, octet ranges for IPv4, the
//! standard library's parser for IPv6, the SSA's never-issued ranges for US SSNs), so that
//! ordinary numbers, dates, versions and times are left alone.

use serde::{Deserialize, Serialize};

use crate::numbers::{classify, digit_group};

/// What a detector looks for; also the PII category it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// `local@domain.tld`.
    Email,
    /// `+` and 8–15 digits (E.164), or a North American number written 3-3-4 with
    /// separators (`(555) 123-4567`, `1-555-123-4567`).
    Phone,
    /// 13–19 digits (spaces or dashes allowed) with a card network prefix and a valid Luhn
    /// check digit.
    PaymentCard,
    /// Country code, check digits and account (groups of four allowed), mod-97 valid.
    Iban,
    /// A dotted-quad IPv4 or an IPv6 address.
    IpAddress,
    /// `AAA-GG-SSSS` outside the never-issued ranges.
    UsSsn,
    /// API keys and tokens of well-known shapes: `sk-…`, `ghp_…`, `xox?-…`, `AKIA…`,
    /// `AIza…`, JWTs, PEM private keys, `chk_…` (ours), and `Bearer <token>`.
    Secret,
}

impl Detector {
    /// Every detector, in the order overlapping hits are preferred.
    pub const ALL: [Detector; 7] = [
        Detector::Secret,
        Detector::Email,
        Detector::Iban,
        Detector::UsSsn,
        Detector::IpAddress,
        Detector::PaymentCard,
        Detector::Phone,
    ];

    /// The category name written into `pii_categories` and `[REDACTED:<category>]`.
    pub fn category(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::IpAddress => "ip_address",
            Detector::UsSsn => "us_ssn",
            Detector::Secret => "secret",
        }
    }
}

/// One finding: `text[start..end]` is a `detector` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Byte offset where the value starts.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// What it is.
    pub detector: Detector,
}

/// Which detectors run (a bit per detector).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorSet(u8);

impl DetectorSet {
    /// Adds `detector`.
    pub fn insert(&mut self, detector: Detector) {
        self.0 |= 1 << detector as u8;
    }

    /// Whether `detector` runs.
    pub fn contains(self, detector: Detector) -> bool {
        self.0 & (1 << detector as u8) != 0
    }

    /// Whether none runs.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The detectors that could find anything in `bytes` at all: an email needs an `@`;
/// numbers, cards, SSNs, IPv4 and IBANs a digit; IPv6 a `:`; every secret shape a capital,
/// `-` or `_`; an IBAN a capital. Plain comparisons the compiler turns into vector
/// instructions, so the common case — prose with nothing personal in it — costs a fraction
/// of a nanosecond a byte.
fn possible(bytes: &[u8], enabled: DetectorSet) -> DetectorSet {
    let (mut at, mut digit, mut colon, mut mark, mut upper) = (0u8, 0u8, 0u8, 0u8, 0u8);
    for chunk in bytes.chunks(256) {
        for &b in chunk {
            at |= u8::from(b == b'@');
            digit |= u8::from(b.wrapping_sub(b'0') < 10);
            colon |= u8::from(b == b':');
            mark |= u8::from(b == b'-') | u8::from(b == b'_');
            upper |= u8::from(b.wrapping_sub(b'A') < 26);
        }
        if at & digit & colon & mark & upper != 0 {
            break;
        }
    }
    let (at, digit, colon, mark, upper) = (at != 0, digit != 0, colon != 0, mark != 0, upper != 0);
    let mut possible = DetectorSet::default();
    let mut admit = |detector: Detector, needs: bool| {
        if needs && enabled.contains(detector) {
            possible.insert(detector);
        }
    };
    admit(Detector::Email, at);
    admit(Detector::Phone, digit);
    admit(Detector::PaymentCard, digit);
    admit(Detector::UsSsn, digit);
    admit(Detector::Iban, digit && upper);
    admit(Detector::IpAddress, digit || colon);
    admit(Detector::Secret, mark || upper);
    possible
}

/// Finds the values of the enabled detectors in `text`, in order, never overlapping.
pub fn scan(text: &str, enabled: DetectorSet, hits: &mut Vec<Hit>) {
    hits.clear();
    let bytes = text.as_bytes();
    let enabled = possible(bytes, enabled);
    if enabled.is_empty() {
        return;
    }
    let mut found: Vec<Hit> = Vec::new();
    if enabled.contains(Detector::Email) {
        emails(bytes, &mut found);
    }
    // Tokens start only where a word does, so after a word start that holds no token the
    // rest of that word is skipped in a tight loop rather than looked at byte by byte.
    let mut at = 0;
    while at < bytes.len() {
        let boundary = at == 0 || !is_word(bytes[at - 1]);
        if !boundary {
            at += 1;
            continue;
        }
        if let Some(next) = token_at(text, at, enabled, &mut found) {
            at = next.max(at + 1);
            continue;
        }
        at += 1;
        if is_word(bytes[at - 1]) {
            while at < bytes.len() && is_word(bytes[at]) {
                at += 1;
            }
        }
    }
    found.sort_by_key(|hit| (hit.start, std::cmp::Reverse(hit.end)));
    for hit in found {
        if hits.last().is_none_or(|last| hit.start >= last.end) {
            hits.push(hit);
        }
    }
}

pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Tries every token-shaped detector at a word start; returns where scanning resumes.
fn token_at(text: &str, at: usize, enabled: DetectorSet, found: &mut Vec<Hit>) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = bytes[at];
    let mut push = |end: usize, detector: Detector| {
        found.push(Hit {
            start: at,
            end,
            detector,
        });
        Some(end)
    };
    if enabled.contains(Detector::Secret)
        && may_start_secret(first)
        && let Some(end) = secret(bytes, at)
    {
        return push(end, Detector::Secret);
    }
    if enabled.contains(Detector::Iban)
        && first.is_ascii_uppercase()
        && let Some(end) = iban(bytes, at)
    {
        return push(end, Detector::Iban);
    }
    if enabled.contains(Detector::IpAddress)
        && (first.is_ascii_hexdigit() || first == b':')
        && let Some(end) = ipv6(text, at)
    {
        return push(end, Detector::IpAddress);
    }
    if first.is_ascii_digit() || first == b'+' || first == b'(' {
        let group = digit_group(bytes, at)?;
        let detector = classify(bytes, at, &group, enabled)?;
        return push(group.end, detector);
    }
    None
}

fn emails(bytes: &[u8], found: &mut Vec<Hit>) {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let start = bytes[..at]
            .iter()
            .rposition(|&b| !local(b))
            .map_or(0, |p| p + 1);
        let mut end = at + 1 + bytes[at + 1..].iter().take_while(|&&b| domain(b)).count();
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let host = &bytes[at + 1..end];
        let tld = host.rsplit(|&b| b == b'.').next().unwrap_or(&[]);
        let dotted = host.contains(&b'.') && !host.starts_with(b".");
        if start < at && dotted && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            found.push(Hit {
                start,
                end,
                detector: Detector::Email,
            });
        }
    }
}

/// Known token shapes: a prefix and the least length of what follows.
const SECRET_PREFIXES: &[(&[u8], usize)] = &[
    (b"sk-", 20),
    (b"sk_live_", 16),
    (b"sk_test_", 16),
    (b"rk_live_", 16),
    (b"ghp_", 30),
    (b"gho_", 30),
    (b"ghu_", 30),
    (b"ghs_", 30),
    (b"github_pat_", 30),
    (b"glpat-", 20),
    (b"xoxb-", 20),
    (b"xoxp-", 20),
    (b"xoxa-", 20),
    (b"xoxs-", 20),
    (b"AKIA", 16),
    (b"ASIA", 16),
    (b"AIza", 35),
    (b"chk_", 40),
    (b"hf_", 30),
];

/// Whether a token starting with `first` can be a secret at all: the first bytes of
/// [`SECRET_PREFIXES`], of a JWT (`eyJ`), a bearer token (`Bearer `) and a PEM block (`-`).
/// Most words start with none of them and cost one lookup instead of two dozen prefix
/// comparisons (a unit test keeps this in step with the prefixes).
fn may_start_secret(first: u8) -> bool {
    matches!(
        first,
        b's' | b'r' | b'g' | b'x' | b'A' | b'c' | b'h' | b'e' | b'B' | b'-'
    )
}

fn secret(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = &bytes[at..];
    let token_len = |from: usize| {
        rest[from..]
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"_-.=+/".contains(&b))
            .count()
    };
    for (prefix, least) in SECRET_PREFIXES {
        if rest.starts_with(prefix) {
            let body = token_len(prefix.len());
            if body >= *least {
                return Some(at + prefix.len() + body);
            }
        }
    }
    if rest.starts_with(b"eyJ") && at.checked_sub(1).is_none_or(|p| !is_base64url(bytes[p])) {
        return jwt(rest).map(|len| at + len);
    }
    if let Some(after) = rest.strip_prefix(b"Bearer ") {
        let len = after
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"_-.=+/~".contains(&b))
            .count();
        if len >= 20 {
            return Some(at + 7 + len);
        }
    }
    if rest.starts_with(b"-----BEGIN ") {
        return pem(rest).map(|len| at + len);
    }
    None
}

/// Longest key a PEM block is looked for in; an unterminated one is cut this far.
const MAX_PEM: usize = 16 * 1024;

/// A PEM private key: its header (within 80 bytes), its body and footer. Without a footer
/// within [`MAX_PEM`], everything up to there counts (a key cut short is still a key). Each
/// search is bounded, and a hit moves the scan past it: hostile text cannot make this
/// quadratic.
fn pem(rest: &[u8]) -> Option<usize> {
    let window = &rest[..rest.len().min(11 + 80)];
    let header_end = find(window, b"-----", 11)? + 5;
    if !rest[..header_end].ends_with(b"PRIVATE KEY-----") {
        return None;
    }
    let limit = rest.len().min(header_end + MAX_PEM);
    let Some(footer) = find(&rest[..limit], b"-----END ", header_end) else {
        return Some(limit);
    };
    let close = find(&rest[..limit], b"-----", footer + 9).map_or(limit, |at| at + 5);
    Some(close)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A JWT: three non-empty base64url segments joined by two dots, 30 bytes or more. The scan
/// stops at a third dot, and a JWT only starts after a byte that cannot be inside one, so
/// every byte is looked at a bounded number of times whatever the text.
fn jwt(rest: &[u8]) -> Option<usize> {
    let mut dots = 0u8;
    let mut segment = 0usize;
    let mut len = 0usize;
    for &b in rest {
        if b == b'.' {
            if segment == 0 || dots == 2 {
                break;
            }
            dots += 1;
            segment = 0;
        } else if is_base64url(b) {
            segment += 1;
        } else {
            break;
        }
        len += 1;
    }
    (dots == 2 && segment > 0 && len >= 30).then_some(len)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|p| p + from)
}

fn iban(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = &bytes[at..];
    if rest.len() < 15
        || !rest[0].is_ascii_uppercase()
        || !rest[1].is_ascii_uppercase()
        || !rest[2].is_ascii_digit()
        || !rest[3].is_ascii_digit()
    {
        return None;
    }
    let mut chars = Vec::with_capacity(34);
    let mut end = 0;
    let mut index = 0;
    while index < rest.len() && chars.len() < 34 {
        let b = rest[index];
        if b.is_ascii_digit() || b.is_ascii_uppercase() {
            chars.push(b);
            index += 1;
            end = index;
        } else if b == b' '
            && chars.len().is_multiple_of(4)
            && rest.get(index + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            index += 1;
        } else {
            break;
        }
    }
    let bounded = rest.get(end).is_none_or(|&b| !is_word(b));
    (bounded && chars.len() >= 15 && mod97(&chars) == 1).then_some(at + end)
}

/// ISO 13616: the first four characters moved to the end, letters as 10..35, mod 97.
fn mod97(chars: &[u8]) -> u32 {
    let (head, tail) = chars.split_at(4);
    let mut remainder = 0u32;
    for &c in tail.iter().chain(head) {
        let value = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder
}

fn ipv6(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    // A group has at most four hex digits, so an address has a ':' within its first five
    // bytes: a word like "cafe" or "added" is turned away here.
    if !bytes[at..].iter().take(5).any(|&b| b == b':') {
        return None;
    }
    // The longest IPv6 text is 45 bytes: a longer run is not one, and is not scanned on.
    let len = bytes[at..]
        .iter()
        .take(46)
        .take_while(|&&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        .count();
    if len > 45 {
        return None;
    }
    let mut candidate = &text[at..at + len];
    candidate = candidate.trim_end_matches('.');
    if candidate.bytes().filter(|&b| b == b':').count() < 2 {
        return None;
    }
    let end = at + candidate.len();
    let bounded = bytes.get(end).is_none_or(|&b| !is_word(b));
    (bounded && candidate.parse::<std::net::Ipv6Addr>().is_ok()).then_some(end)
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;

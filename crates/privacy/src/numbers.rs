//! Detectors of numbers written by hand: payment cards (network prefix and Luhn), US SSNs
//! (never-issued ranges), IPv4 dotted quads, phone numbers (E.164, or North American 3-3-4).

use crate::detect::{Detector, DetectorSet, is_word};

/// A run of digits joined by single separators, as numbers are written by hand. Fixed
/// arrays: this runs for every number in every text, and must not allocate.
pub(crate) struct DigitGroup {
    pub(crate) end: usize,
    digits: [u8; 20],
    count: usize,
    /// Lengths of the digit runs between separators (at most 8 kept).
    runs: [u8; 8],
    run_count: usize,
    plus: bool,
    /// Which separators occur: bit 0 space, 1 dash, 2 dot, 3 parenthesis.
    separators: u8,
}

fn separator_bit(b: u8) -> u8 {
    match b {
        b' ' => 1,
        b'-' => 2,
        b'.' => 4,
        _ => 8,
    }
}

pub(crate) fn digit_group(bytes: &[u8], at: usize) -> Option<DigitGroup> {
    let mut group = DigitGroup {
        end: at,
        digits: [0; 20],
        count: 0,
        runs: [0; 8],
        run_count: 0,
        plus: bytes[at] == b'+',
        separators: 0,
    };
    let mut index = at + usize::from(group.plus);
    let mut run = 0u8;
    while index < bytes.len() && group.count < group.digits.len() {
        let b = bytes[index];
        if b.is_ascii_digit() {
            group.digits[group.count] = b - b'0';
            group.count += 1;
            run += 1;
            index += 1;
            group.end = index;
            continue;
        }
        let next = bytes.get(index + 1).copied().unwrap_or(0);
        let joins = match b {
            b' ' | b'-' | b'.' => next.is_ascii_digit() || next == b'(',
            b'(' => next.is_ascii_digit(),
            b')' => next == b' ' || next == b'-' || next.is_ascii_digit(),
            _ => false,
        };
        if !joins {
            break;
        }
        if run > 0 {
            if group.run_count < group.runs.len() {
                group.runs[group.run_count] = run;
            }
            group.run_count += 1;
            run = 0;
        }
        group.separators |= separator_bit(b);
        index += 1;
    }
    if run > 0 {
        if group.run_count < group.runs.len() {
            group.runs[group.run_count] = run;
        }
        group.run_count += 1;
    }
    let bounded = bytes.get(group.end).is_none_or(|&b| !is_word(b));
    (bounded && group.count > 0).then_some(group)
}

impl DigitGroup {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.count]
    }

    fn runs(&self) -> &[u8] {
        &self.runs[..self.run_count.min(self.runs.len())]
    }

    /// Written the way North American numbers are: 3-3-4 digits, optionally after a 1.
    fn nanp_shaped(&self) -> bool {
        self.separators != 0 && matches!(self.runs(), [3, 3, 4] | [1, 3, 3, 4])
    }
}

pub(crate) fn classify(
    bytes: &[u8],
    at: usize,
    group: &DigitGroup,
    enabled: DetectorSet,
) -> Option<Detector> {
    let text = &bytes[at..group.end];
    let digits = group.digits();
    let only = |allowed: u8| group.separators & !allowed == 0;
    if enabled.contains(Detector::UsSsn) && is_ssn(text) {
        return Some(Detector::UsSsn);
    }
    if enabled.contains(Detector::IpAddress) && is_ipv4(text) {
        return Some(Detector::IpAddress);
    }
    if enabled.contains(Detector::PaymentCard)
        && (13..=19).contains(&digits.len())
        && !group.plus
        && only(1 | 2)
        && card_prefix(digits)
        && luhn(digits)
    {
        return Some(Detector::PaymentCard);
    }
    if enabled.contains(Detector::Phone) {
        let international = group.plus && (8..=15).contains(&digits.len());
        if international || group.nanp_shaped() {
            return Some(Detector::Phone);
        }
    }
    None
}

fn is_ssn(text: &[u8]) -> bool {
    let shape = text.len() == 11
        && text[3] == b'-'
        && text[6] == b'-'
        && text
            .iter()
            .enumerate()
            .all(|(i, b)| i == 3 || i == 6 || b.is_ascii_digit());
    shape
        && &text[..3] != b"000"
        && &text[..3] != b"666"
        && text[0] != b'9'
        && &text[4..6] != b"00"
        && &text[7..] != b"0000"
}

fn is_ipv4(text: &[u8]) -> bool {
    let parts: Vec<&[u8]> = text.split(|&b| b == b'.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            (1..=3).contains(&part.len())
                && part.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(part)
                    .ok()
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|octet| octet <= 255)
        })
}

/// Visa 4, Mastercard 51–55 and 2221–2720, Amex 34/37, Diners 36/38/300–305, Discover
/// 6011/65/644–649, JCB 35, UnionPay 62.
fn card_prefix(digits: &[u8]) -> bool {
    let lead = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    matches!(digits[0], 4)
        || (51..=55).contains(&lead(2))
        || (2221..=2720).contains(&lead(4))
        || matches!(lead(2), 34 | 35 | 36 | 37 | 38 | 62 | 65)
        || (300..=305).contains(&lead(3))
        || (644..=649).contains(&lead(3))
        || lead(4) == 6011
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

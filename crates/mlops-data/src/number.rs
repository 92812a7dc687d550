//! Numbers in CSV fields, read the same way by every reader (the dataset reader, the prediction
//! service, the holdout client), so that the service and the offline model see the same `f32`
//! for the same text.
//!
//! Most fields in tabular data are short decimals (`16`, `0.25`, `-3.5`, `0.0615265`). Those take
//! a fast path: the digits make an integer `m` below 2^24 (leading zeros add nothing to it) and
//! the point a power of ten `10^k` with `k <= 10`; both are exact in `f32`, so one IEEE division
//! gives the correctly rounded result (Clinger's fast path), the same value `str::parse::<f32>`
//! gives. Everything else (exponents, long mantissas, `inf`, Unicode whitespace) goes to
//! `str::parse`.

/// Powers of ten exact in `f32` (5^10 < 2^24).
const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// `field` without ASCII whitespace at either end.
pub fn trim(field: &[u8]) -> &[u8] {
    let start = field
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    field.get(start..end).unwrap_or_default()
}

/// The finite number `field` holds (surrounding whitespace allowed), or `None`.
#[inline]
pub fn parse(field: &[u8]) -> Option<f32> {
    // Small enough to inline into a reader's loop; the rest is out of line.
    match fast(field) {
        Some(v) => Some(v),
        None => slow(field),
    }
}

/// [`parse`] for a field that is not a short decimal as it stands: whitespace around it (rare,
/// so it is looked for only here), or a number for `str::parse`.
#[cold]
#[inline(never)]
fn slow(field: &[u8]) -> Option<f32> {
    fast(trim(field)).or_else(|| {
        std::str::from_utf8(field)
            .ok()?
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
    })
}

/// [`parse`] for a field the caller knows holds nothing but ASCII digits (a record whose
/// [`digits`](crate::records::Record::digits) is set): up to seven of them make an exact `f32`
/// with no further checks.
pub fn digits(field: &[u8]) -> Option<f32> {
    if field.is_empty() || field.len() > 7 {
        return parse(field);
    }
    let mut n = 0u32;
    for &b in field {
        n = n * 10 + u32::from(b.wrapping_sub(b'0'));
    }
    Some(n as f32)
}

/// The most characters (after the sign) a plain decimal may have: below 10^31, always a finite
/// `f32`.
pub const PLAIN_LENGTH: usize = 31;

/// Whether `field` holds a finite number (what [`parse`] reads), without making the `f32`.
pub fn is_number(field: &[u8]) -> bool {
    plain(trim(field)) || parse(field).is_some()
}

/// Whether every comma-separated field of `text` is plain (see [`plain`]): one pass over a run of
/// fields, for the common case; `false` sends the caller to [`is_number`] field by field (which
/// also takes whitespace, exponents and the rest).
pub fn all_plain(text: &[u8]) -> bool {
    let mut length = 0usize; // characters after the sign
    let (mut digit, mut point, mut start) = (false, false, true);
    for &b in text {
        match b {
            b'0'..=b'9' => {
                digit = true;
                length += 1;
            }
            b',' => {
                if !digit || length > PLAIN_LENGTH {
                    return false;
                }
                (length, digit, point, start) = (0, false, false, true);
                continue;
            }
            b'.' if !point => {
                point = true;
                length += 1;
            }
            b'-' | b'+' if start => {}
            _ => return false,
        }
        start = false;
    }
    digit && length <= PLAIN_LENGTH
}

/// `[+-]digits[.digits]` in at most [`PLAIN_LENGTH`] characters after the sign: always a finite
/// `f32`.
fn plain(text: &[u8]) -> bool {
    let digits = match text.split_first() {
        Some((b'-' | b'+', rest)) => rest,
        _ => text,
    };
    if digits.is_empty() || digits.len() > PLAIN_LENGTH {
        return false;
    }
    let mut points = 0;
    for &b in digits {
        match b {
            b'0'..=b'9' => {}
            b'.' => points += 1,
            _ => return false,
        }
    }
    points == 0 || points == 1 && digits.len() > 1
}

/// `[+-]digits[.digits]` whose digits make an integer below 2^24, with at most 10 of them after
/// the point; `None` otherwise.
fn fast(text: &[u8]) -> Option<f32> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    // Twelve characters hold at most twelve digits: no overflow of a u64.
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit < 10 {
            mantissa = mantissa * 10 + u64::from(digit);
        } else if b == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    // "." alone has no digit ("5." and ".5" are fine).
    if digits == b"." {
        return None;
    }
    let scale = point.map_or(0, |p| digits.len() - p - 1);
    if mantissa >= 1 << 24 {
        return None;
    }
    // Both exact in f32: `mantissa` below 2^24, and 10^scale for scale <= 10 (5^10 < 2^24).
    let value = if scale == 0 {
        mantissa as f32
    } else {
        mantissa as f32 / POW10.get(scale)?
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_fields_read_as_parse_reads_them() {
        for field in [
            "0",
            "7",
            "16",
            "0000012",
            "9999999",
            "12345678",
            "99999999999",
            "",
        ] {
            assert_eq!(
                digits(field.as_bytes()),
                parse(field.as_bytes()),
                "{field:?}"
            );
        }
    }

    fn std_parse(text: &str) -> Option<f32> {
        text.trim().parse::<f32>().ok().filter(|v| v.is_finite())
    }

    fn agree(text: &str) {
        let ours = parse(text.as_bytes());
        let theirs = std_parse(text);
        assert_eq!(is_number(text.as_bytes()), theirs.is_some(), "`{text}`");
        // A plain field is a number; and a run of plain fields is plain field by field.
        if text.contains(',') {
            return;
        }
        let alone = all_plain(text.as_bytes());
        assert!(!alone || theirs.is_some(), "`{text}`");
        let run = format!("1,{text},-2.5");
        assert_eq!(all_plain(run.as_bytes()), alone, "`{run}`");
        assert_eq!(
            ours.map(f32::to_bits),
            theirs.map(f32::to_bits),
            "`{text}`: {ours:?} against {theirs:?}"
        );
    }

    #[test]
    fn every_short_decimal_reads_as_std_reads_it() {
        // All integers below a million, and each with the point in every place.
        for n in (0..1_000_000u32).step_by(7) {
            let s = n.to_string();
            agree(&s);
            agree(&format!("-{s}"));
            for p in 0..=s.len() {
                let (a, b) = s.split_at(p);
                agree(&format!("{a}.{b}"));
            }
        }
        for s in [
            "0.1",
            "0.2",
            "0.3",
            "0.7",
            "1.1",
            "16.0",
            "3.4028235",
            "0.0000001",
            // Leading zeros add nothing to the mantissa: these are fast, and must agree.
            "0.0615265",
            "-0.00123456",
            "00016777215",
            "0.016777215",
            "1677.7215",
            // The slow path: 2^24 and past it, more than twelve characters, more than ten
            // digits after the point.
            "16777216",
            "0.16777217",
            "000000016777215",
            "0.0000016777215",
            "0.00000000001",
            "0.000000000012",
        ] {
            agree(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_plain_decimal_reads_as_std_reads_it(
            sign in "[+-]?",
            whole in "[0-9]{0,13}",
            fraction in proptest::option::of("[0-9]{0,13}"),
        ) {
            let text = match fraction {
                Some(f) => format!("{sign}{whole}.{f}"),
                None => format!("{sign}{whole}"),
            };
            agree(&text);
        }
    }

    #[test]
    fn the_slow_path_and_the_refusals_match_std() {
        for s in [
            "1e5",
            "1E-3",
            "12345678",
            "123456789.5",
            "inf",
            "-inf",
            "NaN",
            "nan",
            "1e39",
            " 7 ",
            "\t-2.5\r",
            "\u{a0}5",
            "",
            ".",
            "-",
            "+",
            "+.",
            "1..2",
            "1.2.3",
            "--1",
            "1-",
            "0x10",
            "1,5",
            "١",
            "+3.25",
            ".5",
            "5.",
            "-0",
            "-0.0",
            "00000012",
            "0.00000000001",
        ] {
            agree(s);
        }
        // Long plain decimals: finite up to 38 digits, infinite (refused) beyond.
        for n in [29, 30, 31, 32, 38, 39, 40] {
            let nines = "9".repeat(n);
            agree(&nines);
            agree(&format!("-{nines}"));
            agree(&format!(".{nines}"));
            let (a, b) = nines.split_at(n / 2);
            agree(&format!("{a}.{b}"));
            agree(&format!("0.{}1", "0".repeat(n)));
        }
    }

    #[test]
    fn trim_takes_ascii_whitespace_off_both_ends() {
        assert_eq!(trim(b"  1.5\t\r\n"), b"1.5");
        assert_eq!(trim(b" \t "), b"");
        assert_eq!(trim(b"a b"), b"a b");
    }
}

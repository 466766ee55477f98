//! Integers as Redis reads and writes them.
//!
//! Redis accepts exactly one spelling of each integer (its `string2ll`): no sign but `-`, no
//! leading zero, no spaces, at most 20 characters, within `i64`. Lengths in the protocol and the
//! values `INCR` works on are both read this way, so `"01"`, `"+1"` and `" 1"` are "not an
//! integer" here exactly as they are for Redis.

/// The longest text `string2ll` considers at all (Redis's `LONG_STR_SIZE` is 21, with the NUL).
const MAX_DIGITS: usize = 20;

/// Parses `text` as Redis's `string2ll` does; `None` where Redis says "not an integer".
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_DIGITS {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // The first digit must be 1-9: "0" alone was handled above, "-0" and "007" are rejected.
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // i64::MIN has no positive counterpart, so compare in u64 before negating.
        if value > i64::MIN.unsigned_abs() {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

/// Appends the decimal text of `value` (no allocation: digits are built on the stack).
pub fn push_i64(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_what_redis_parses() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn formats_every_sign_and_width() {
        for v in [0, 7, -7, 10, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}

//! Byte-level writers for JSON strings, CSV fields and zero-padded numbers (hand-written so
//! that millions of lines cost no allocation and no `serde_json::Value`).

/// A JSON string literal, escaped per RFC 8259.
pub fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// A CSV field, quoted (RFC 4180) only when it has to be.
pub fn push_csv_field(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for &b in s.as_bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// `n` in decimal, left-padded with zeros to at least `width` digits.
pub fn push_padded(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (tmp.len() - i)..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub fn push_uint(buf: &mut Vec<u8>, n: u64) {
    push_padded(buf, n, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip() {
        for s in [
            "plain",
            "Gonçalves",
            "a \"quote\" and \\ back\nline\u{1}",
            "Vallée de l'Ernz",
        ] {
            let mut b = Vec::new();
            push_json_str(&mut b, s);
            let back: String = serde_json::from_slice(&b).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn numbers_and_csv() {
        let mut b = Vec::new();
        push_padded(&mut b, 42, 6);
        b.push(b' ');
        push_uint(&mut b, 0);
        b.push(b' ');
        push_padded(&mut b, 1234567, 3);
        b.push(b' ');
        push_csv_field(&mut b, "a,b \"c\"");
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "000042 0 1234567 \"a,b \"\"c\"\"\""
        );
    }
}

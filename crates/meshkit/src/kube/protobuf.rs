//! The Kubernetes protobuf wire envelope, read without decoding what is not asked for: a response
//! is `k8s\0` followed by a `runtime.Unknown` whose field 2 (`raw`) holds the object, and a list's
//! field 1 is its `ListMeta` (`continue` is field 3). Only the fields named here are looked at.

/// The magic that starts every protobuf-encoded object.
pub const MAGIC: &[u8] = b"k8s\0";
/// What to ask for: protobuf where the API has it, else JSON (custom resources have none).
pub const ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";

/// One field: `(number, wire type, payload if length-delimited, the rest)`.
fn field(buf: &[u8]) -> Option<(u64, u8, &[u8], &[u8])> {
    let (tag, rest) = varint(buf)?;
    let (number, wire) = (tag >> 3, (tag & 7) as u8);
    match wire {
        0 => varint(rest).map(|(_, rest)| (number, wire, &[][..], rest)),
        1 => rest.get(8..).map(|r| (number, wire, &[][..], r)),
        2 => {
            let (len, rest) = varint(rest)?;
            let len = usize::try_from(len).ok()?;
            (rest.len() >= len).then(|| (number, wire, &rest[..len], &rest[len..]))
        }
        5 => rest.get(4..).map(|r| (number, wire, &[][..], r)),
        _ => None,
    }
}

fn varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

/// The first length-delimited field `number` of a message.
pub fn find(mut buf: &[u8], number: u64) -> Option<&[u8]> {
    while !buf.is_empty() {
        let (n, wire, payload, rest) = field(buf)?;
        if n == number && wire == 2 {
            return Some(payload);
        }
        buf = rest;
    }
    None
}

/// The encoded object inside a protobuf response (`None`: not protobuf, or malformed).
pub fn object(body: &[u8]) -> Option<&[u8]> {
    find(body.strip_prefix(MAGIC)?, 2)
}

/// A list's `metadata.continue`, empty on the last page.
pub fn list_continue(list: &[u8]) -> String {
    find(list, 1).and_then(|meta| find(meta, 3)).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn the_object_and_its_continue_token_are_found_past_other_fields() {
        let meta = [len_field(2, b"42"), len_field(3, b"next-page")].concat();
        let list = [len_field(1, &meta), len_field(2, b"item")].concat();
        // typeMeta (1), a varint field of no interest (7 = 150), raw (2).
        let envelope = [len_field(1, b"v1/PodList"), vec![7 << 3, 0x96, 0x01], len_field(2, &list)].concat();
        let body = [MAGIC, &envelope[..]].concat();
        let found = object(&body).unwrap();
        assert_eq!(found, &list[..]);
        assert_eq!(list_continue(found), "next-page");
        assert_eq!(list_continue(&len_field(2, b"item")), "", "the last page has none");
        assert_eq!(object(b"{\"kind\":\"PodList\"}"), None, "JSON is not protobuf");
        assert_eq!(object(&[MAGIC, &[0x12, 0x05, 1]].concat()), None, "truncated");
    }
}

//! Just enough DER to read three fields of an X.509 certificate.
//!
//! The transport needs a node's id from its certificate (the common name
//! `node-{id}`), and reloading a CA needs the CA's name and public key. A
//! full X.509 parser would add a dozen crates for three fields, so this
//! walks the fixed prefix of `TBSCertificate` (RFC 5280 §4.1) instead. It
//! only reads certificates that TLS has already verified or that this crate
//! wrote itself, and it returns `None` on anything unexpected rather than
//! guessing; it never panics on malformed input.

const TAG_INTEGER: u8 = 0x02;
const TAG_OBJECT_IDENTIFIER: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
/// `[0] EXPLICIT Version` at the start of a v3 `TBSCertificate`.
const TAG_VERSION: u8 = 0xa0;
/// The encoded body of OID 2.5.4.3, `id-at-commonName`.
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
/// Lengths beyond four bytes would describe values larger than any
/// certificate this crate accepts.
const LENGTH_BYTES_MAX: usize = 4;

/// One decoded tag-length-value element.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    tag: u8,
    /// The content octets.
    value: &'a [u8],
    /// The whole encoding: tag, length and content.
    encoding: &'a [u8],
}

/// The certificate fields this crate reads, borrowed from the DER.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertificateFields<'a> {
    /// The issuer `Name`, whole encoding.
    pub(crate) issuer: &'a [u8],
    /// The subject `Name`, whole encoding.
    pub(crate) subject: &'a [u8],
    /// The `SubjectPublicKeyInfo`, whole encoding.
    pub(crate) subject_public_key_info: &'a [u8],
}

/// Splits the first element off `input`, returning it and the rest.
fn read_element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    // Multi-byte tags (low five bits all set) never occur in the fields read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, after_first) = after_tag.split_first()?;
    let (length, after_length) = if first < 0x80 {
        (usize::from(first), after_first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > LENGTH_BYTES_MAX {
            return None;
        }
        let (length_bytes, rest) = after_first.split_at_checked(count)?;
        let length = length_bytes.iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, rest)
    };
    let (value, rest) = after_length.split_at_checked(length)?;
    let encoding = &input[..input.len() - rest.len()];
    Some((Element { tag, value, encoding }, rest))
}

/// Like [`read_element`], but only accepts the given tag.
fn expect(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    let (element, rest) = read_element(input)?;
    (element.tag == tag).then_some((element, rest))
}

/// Reads issuer, subject and public key from a DER certificate.
pub(crate) fn certificate_fields(certificate: &[u8]) -> Option<CertificateFields<'_>> {
    let (certificate, _) = expect(certificate, TAG_SEQUENCE)?;
    let (tbs, _) = expect(certificate.value, TAG_SEQUENCE)?;
    let mut rest = tbs.value;
    if rest.first() == Some(&TAG_VERSION) {
        rest = read_element(rest)?.1;
    }
    let (_serial, rest) = expect(rest, TAG_INTEGER)?;
    let (_signature, rest) = expect(rest, TAG_SEQUENCE)?;
    let (issuer, rest) = expect(rest, TAG_SEQUENCE)?;
    let (_validity, rest) = expect(rest, TAG_SEQUENCE)?;
    let (subject, rest) = expect(rest, TAG_SEQUENCE)?;
    let (subject_public_key_info, _) = expect(rest, TAG_SEQUENCE)?;
    Some(CertificateFields {
        issuer: issuer.encoding,
        subject: subject.encoding,
        subject_public_key_info: subject_public_key_info.encoding,
    })
}

/// The single common name in a DER `Name` (whole encoding). `None` when
/// there is no common name, more than one, or it is not a UTF-8 or
/// printable string; an ambiguous identity is no identity.
pub(crate) fn common_name(name: &[u8]) -> Option<&str> {
    let (name, _) = expect(name, TAG_SEQUENCE)?;
    let mut found = None;
    let mut names = name.value;
    while !names.is_empty() {
        let (relative_name, rest) = expect(names, TAG_SET)?;
        names = rest;
        let mut attributes = relative_name.value;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(attributes, TAG_SEQUENCE)?;
            attributes = rest;
            if let Some(value) = common_name_value(attribute.value)? {
                if found.replace(value).is_some() {
                    return None;
                }
            }
        }
    }
    found
}

/// Decodes one `AttributeTypeAndValue`: `Some(Some(text))` for a common
/// name, `Some(None)` for another attribute, `None` when malformed.
fn common_name_value(attribute: &[u8]) -> Option<Option<&str>> {
    let (oid, rest) = expect(attribute, TAG_OBJECT_IDENTIFIER)?;
    let (value, _) = read_element(rest)?;
    if oid.value != OID_COMMON_NAME {
        return Some(None);
    }
    if value.tag != TAG_UTF8_STRING && value.tag != TAG_PRINTABLE_STRING {
        return None;
    }
    std::str::from_utf8(value.value).ok().map(Some)
}

#[cfg(test)]
mod tests;

use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};

use super::{certificate_fields, common_name};

fn self_signed(common_names: &[&str]) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["example.test".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "hyperraft");
    for name in common_names {
        params.distinguished_name.push(DnType::CommonName, *name);
    }
    let certificate = params.self_signed(&key).unwrap();
    (certificate.der().to_vec(), key)
}

#[test]
fn reads_fields_of_a_generated_certificate() {
    // Proves the walker finds the subject's common name, an issuer equal to
    // the subject (self-signed), and the exact public key rcgen encoded.
    let (der, key) = self_signed(&["node-7"]);
    let fields = certificate_fields(&der).expect("fields");
    assert_eq!(common_name(fields.subject), Some("node-7"));
    assert_eq!(fields.issuer, fields.subject);
    assert_eq!(fields.subject_public_key_info, key.subject_public_key_info().as_slice());
}

/// A DER `Name` with one relative name per common name given.
fn name_with_common_names(common_names: &[&str]) -> Vec<u8> {
    let mut sets = Vec::new();
    for name in common_names {
        let mut attribute = vec![0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, name.len() as u8];
        attribute.extend_from_slice(name.as_bytes());
        let mut sequence = vec![0x30, attribute.len() as u8];
        sequence.extend(attribute);
        sets.extend([0x31, sequence.len() as u8]);
        sets.extend(sequence);
    }
    let mut encoded = vec![0x30, sets.len() as u8];
    encoded.extend(sets);
    encoded
}

#[test]
fn missing_or_repeated_common_name_is_none() {
    // Proves a name without a common name, or with two, yields no identity,
    // while the same layout with one common name reads back.
    let (none, _) = self_signed(&[]);
    let subject = certificate_fields(&none).unwrap().subject;
    assert_eq!(common_name(subject), None);
    assert_eq!(common_name(&name_with_common_names(&["a"])), Some("a"));
    assert_eq!(common_name(&name_with_common_names(&["a", "b"])), None);
}

#[test]
fn truncated_and_corrupted_input_never_panics() {
    // Proves every truncation is rejected and that flipping any single byte
    // never panics (it may still parse, since DER content is not checked).
    let (der, _) = self_signed(&["node-3"]);
    for length in 0..der.len() {
        assert!(certificate_fields(&der[..length]).is_none(), "prefix {length}");
    }
    for index in 0..der.len() {
        let mut corrupted = der.clone();
        corrupted[index] ^= 0xff;
        if let Some(fields) = certificate_fields(&corrupted) {
            let _ = common_name(fields.subject);
        }
    }
}

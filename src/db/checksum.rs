//! Migration checksums exactly as Prisma computes them: lowercase hex SHA-256 of the
//! `migration.sql` bytes. Comparison tolerates what Prisma tolerates: CRLF↔LF line
//! endings and the non-zero-padded hex some old Prisma versions wrote.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Old Prisma formatted each byte with `{:x}`, dropping leading zeros.
fn unpadded_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:x}")).collect()
}

fn variants(script: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(script);
    let lf = text.replace("\r\n", "\n");
    let crlf = lf.replace('\n', "\r\n");
    vec![script.to_vec(), lf.into_bytes(), crlf.into_bytes()]
}

/// True when `recorded` is the checksum of `script`, allowing for line-ending changes
/// and old unpadded hex.
pub fn matches(recorded: &str, script: &[u8]) -> bool {
    let recorded = recorded.trim().to_ascii_lowercase();
    variants(script).iter().any(|bytes| {
        let digest = Sha256::digest(bytes);
        hex::encode(digest) == recorded || unpadded_hex(&digest) == recorded
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_lowercase_sha256_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn line_endings_and_unpadded_hex_are_tolerated() {
        let lf = b"CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n";
        let crlf = b"CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n";
        assert!(matches(&sha256_hex(lf), crlf));
        assert!(matches(&sha256_hex(crlf), lf));
        assert!(matches(&unpadded_hex(&Sha256::digest(lf)), lf));
        assert!(!matches(&sha256_hex(lf), b"CREATE TABLE a (id bigint);\n"));
    }
}

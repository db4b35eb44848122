//! Parsing and validation of OpenSSH public keys (`type base64 [comment]`), down to
//! the key blob's structure, so garbage never reaches a guest's authorized_keys.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A validated public key.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    pub key_type: &'static str,
    /// `type base64 [comment]`, single-spaced.
    pub normalized: String,
    /// `SHA256:<base64>` of the blob, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Why a public key was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyError {
    /// The text is not `type base64 [comment]`.
    #[error("public_key must look like \"ssh-ed25519 AAAA... comment\"")]
    Shape,
    /// The key type is not one skiff accepts.
    #[error("unsupported key type {0:?}; use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521")]
    Type(String),
    /// The base64 part does not decode.
    #[error("public_key's key data is not valid base64")]
    Base64,
    /// The decoded blob is not a well-formed key of the named type.
    #[error("public_key's key data is not a valid {0} key")]
    Blob(&'static str),
    /// RSA keys must be at least 2048 bits.
    #[error("RSA keys must have at least 2048 bits (this one has {0})")]
    RsaTooShort(usize),
}

const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// Reads SSH wire-format strings (u32 length + bytes) off a blob.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

/// Validates and normalises one public key line.
pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
    let text = text.trim();
    let mut parts = text.split_whitespace();
    let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
        return Err(KeyError::Shape);
    };
    let comment: Vec<&str> = parts.collect();
    if text.contains(['\n', '\r', '\0']) {
        return Err(KeyError::Shape);
    }
    let key_type = *TYPES
        .iter()
        .find(|t| **t == kind)
        .ok_or_else(|| KeyError::Type(kind.chars().take(40).collect()))?;
    let blob = STANDARD.decode(data).map_err(|_| KeyError::Base64)?;
    let mut r = Reader(&blob);
    let bad = || KeyError::Blob(key_type);
    if r.string().ok_or_else(bad)? != key_type.as_bytes() {
        return Err(bad());
    }
    match key_type {
        "ssh-ed25519" => {
            if r.string().ok_or_else(bad)?.len() != 32 {
                return Err(bad());
            }
        }
        "ssh-rsa" => {
            let e = r.string().ok_or_else(bad)?;
            let n = r.string().ok_or_else(bad)?;
            if e.is_empty() || n.is_empty() {
                return Err(bad());
            }
            let n = match n.iter().position(|b| *b != 0) {
                Some(i) => &n[i..],
                None => return Err(bad()),
            };
            let bits = n.len() * 8 - n[0].leading_zeros() as usize;
            if bits < 2048 {
                return Err(KeyError::RsaTooShort(bits));
            }
        }
        _ => {
            let (curve, point_len) = match key_type {
                "ecdsa-sha2-nistp256" => ("nistp256", 65),
                "ecdsa-sha2-nistp384" => ("nistp384", 97),
                _ => ("nistp521", 133),
            };
            if r.string().ok_or_else(bad)? != curve.as_bytes() {
                return Err(bad());
            }
            let q = r.string().ok_or_else(bad)?;
            if q.len() != point_len || q[0] != 4 {
                return Err(bad());
            }
        }
    }
    if !r.0.is_empty() {
        return Err(bad());
    }
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
    let mut normalized = format!("{key_type} {data}");
    if !comment.is_empty() {
        normalized.push(' ');
        normalized.push_str(&comment.join(" "));
    }
    Ok(PublicKey {
        key_type,
        normalized,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated with `ssh-keygen -t ed25519`; fingerprint from `ssh-keygen -lf`.
    pub const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT user@host";

    fn blob(parts: &[&[u8]]) -> String {
        let mut b = Vec::new();
        for p in parts {
            b.extend_from_slice(&(p.len() as u32).to_be_bytes());
            b.extend_from_slice(p);
        }
        STANDARD.encode(b)
    }

    #[test]
    fn accepts_and_fingerprints_ed25519() {
        let k = parse(&format!("  {ED25519}  ")).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert_eq!(k.normalized, ED25519);
        assert_eq!(
            k.fingerprint,
            "SHA256:giS2wX5XwZTg4bH/Zl3B/xHHBNqHfh9nyfgLYEF2P1A"
        );
    }

    #[test]
    fn checks_rsa_and_ecdsa_structure() {
        let mut n = vec![0u8];
        n.extend(std::iter::repeat_n(0xffu8, 256));
        let rsa = format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[1, 0, 1], &n]));
        assert_eq!(parse(&rsa).unwrap().key_type, "ssh-rsa");
        let short = format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[1, 0, 1], &[0xff; 128]]));
        assert_eq!(parse(&short), Err(KeyError::RsaTooShort(1024)));

        let mut q = vec![4u8];
        q.extend([7u8; 64]);
        let ec = format!(
            "ecdsa-sha2-nistp256 {} x",
            blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &q])
        );
        assert_eq!(parse(&ec).unwrap().key_type, "ecdsa-sha2-nistp256");
        let wrong_curve = format!(
            "ecdsa-sha2-nistp256 {}",
            blob(&[b"ecdsa-sha2-nistp256", b"nistp384", &q])
        );
        assert_eq!(
            parse(&wrong_curve),
            Err(KeyError::Blob("ecdsa-sha2-nistp256"))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(KeyError::Shape));
        assert_eq!(parse("hello"), Err(KeyError::Shape));
        assert!(matches!(parse("ssh-dss AAAA"), Err(KeyError::Type(_))));
        assert_eq!(parse("ssh-ed25519 not*base64"), Err(KeyError::Base64));
        // Type inside the blob disagrees with the text.
        let lying = format!("ssh-rsa {}", ED25519.split(' ').nth(1).unwrap());
        assert_eq!(parse(&lying), Err(KeyError::Blob("ssh-rsa")));
        // Truncated blob, and trailing bytes.
        assert_eq!(
            parse(&format!(
                "ssh-ed25519 {}",
                blob(&[b"ssh-ed25519", &[1; 31]])
            )),
            Err(KeyError::Blob("ssh-ed25519"))
        );
        assert_eq!(
            parse(&format!(
                "ssh-ed25519 {}",
                blob(&[b"ssh-ed25519", &[1; 32], b"x"])
            )),
            Err(KeyError::Blob("ssh-ed25519"))
        );
        assert_eq!(
            parse(&format!("{ED25519}\nssh-ed25519 AAAA")),
            Err(KeyError::Shape)
        );
    }
}

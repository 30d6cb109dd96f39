//! `X-Hub-Signature-256` verification: HMAC-SHA256 over the raw body,
//! compared in constant time, against every accepted secret (so secrets can
//! be rotated without dropping deliveries).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Whether `header` (`sha256=<hex>`) signs `body` with one of `secrets`.
pub fn verify(secrets: &[SecretString], header: &str, body: &[u8]) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    // Check every secret, so the time taken does not tell which one matched.
    secrets.iter().fold(false, |matched, secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(&signature).is_ok() | matched
    })
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented test vector ("Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const HEADER: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn github_documented_vector() {
        assert_eq!(sign(SECRET, b"Hello, World!"), HEADER);
        assert!(verify(&secrets(&[SECRET]), HEADER, b"Hello, World!"));
    }

    #[test]
    fn rotated_secret_is_accepted() {
        assert!(verify(
            &secrets(&["new-secret", SECRET]),
            HEADER,
            b"Hello, World!"
        ));
    }

    #[test]
    fn rejections() {
        let s = secrets(&[SECRET]);
        assert!(!verify(&s, HEADER, b"Hello, World?"));
        assert!(!verify(
            &s,
            &HEADER.replace("sha256=", "sha1="),
            b"Hello, World!"
        ));
        assert!(!verify(&s, "sha256=zz", b"Hello, World!"));
        assert!(!verify(&s, "sha256=", b"Hello, World!"));
        assert!(!verify(&secrets(&["other"]), HEADER, b"Hello, World!"));
    }
}

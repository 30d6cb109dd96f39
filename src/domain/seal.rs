//! The seal on the memory a sticky comment carries.
//!
//! The memory (a fork approval above all) sits in a comment, trusted because
//! pullstack's own login wrote it. In a GitHub Action that login,
//! `github-actions[bot]`, is shared by every workflow of the repository, so
//! the login alone proves nothing. The memory is therefore signed with an
//! HMAC under a key only pullstack holds, and a memory whose seal does not
//! verify is not pullstack's.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// What the key is derived under, so a seal can never pass for a webhook
/// signature made with the same secret, or the other way round.
const CONTEXT: &[u8] = b"pullstack comment memory v1";

/// Signs and verifies memories. Holds the current key first, then any key
/// still accepted during a rotation.
#[derive(Clone)]
pub struct Seal {
    keys: Vec<SecretSlice<u8>>,
}

/// How a memory's seal reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Signed with one of the keys.
    Sealed,
    /// No seal at all: written before memories were sealed, or by a
    /// pullstack run without a key. Trusted for nothing that grants access.
    Unsealed,
    /// A seal that no key made: not pullstack's.
    Forged,
}

impl Seal {
    /// A seal keyed from `secrets` (the first signs; all verify).
    pub fn new<S: AsRef<[u8]>>(secrets: impl IntoIterator<Item = S>) -> Seal {
        let keys = secrets
            .into_iter()
            .map(|secret| {
                let mut mac = hmac(secret.as_ref());
                mac.update(CONTEXT);
                SecretSlice::from(mac.finalize().into_bytes().to_vec())
            })
            .collect();
        Seal { keys }
    }

    /// No key: memories are written unsealed, and none is trusted to grant
    /// access.
    pub fn none() -> Seal {
        Seal { keys: Vec::new() }
    }

    /// The seal of `text`, if there is a key.
    pub fn sign(&self, text: &str) -> Option<String> {
        let key = self.keys.first()?;
        let mut mac = hmac(key.expose_secret());
        mac.update(text.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `seal` was made over `text` by one of the keys.
    pub fn verify(&self, text: &str, seal: Option<&str>) -> Verified {
        let Some(seal) = seal else {
            return Verified::Unsealed;
        };
        let Ok(seal) = hex::decode(seal) else {
            return Verified::Forged;
        };
        // Every key is tried, so the time taken does not tell which matched.
        let matched = self.keys.iter().fold(false, |matched, key| {
            let mut mac = hmac(key.expose_secret());
            mac.update(text.as_bytes());
            mac.verify_slice(&seal).is_ok() | matched
        });
        if matched {
            Verified::Sealed
        } else {
            Verified::Forged
        }
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seal({} keys)", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_verifies_under_any_current_key_only() {
        let old = Seal::new(["old"]);
        let rotating = Seal::new(["new", "old"]);
        let text = r#"{"env":"pr-1","approved":"abc"}"#;
        let by_old = old.sign(text).unwrap();
        assert_eq!(rotating.verify(text, Some(&by_old)), Verified::Sealed);
        let by_new = rotating.sign(text).unwrap();
        assert_eq!(old.verify(text, Some(&by_new)), Verified::Forged);
        assert_eq!(
            rotating.verify(r#"{"env":"pr-1","approved":"abd"}"#, Some(&by_new)),
            Verified::Forged
        );
        assert_eq!(rotating.verify(text, Some("zz")), Verified::Forged);
        assert_eq!(rotating.verify(text, None), Verified::Unsealed);
    }

    #[test]
    fn without_a_key_nothing_is_sealed_or_verified() {
        let none = Seal::none();
        assert_eq!(none.sign("x"), None);
        let sealed = Seal::new(["k"]).sign("x");
        assert_eq!(none.verify("x", sealed.as_deref()), Verified::Forged);
    }

    #[test]
    fn the_key_is_not_the_webhook_secret_itself() {
        let seal = Seal::new(["secret"]);
        let mut plain = hmac(b"secret");
        plain.update(b"x");
        assert_ne!(
            seal.sign("x").unwrap(),
            hex::encode(plain.finalize().into_bytes())
        );
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", Seal::new(["hunter2"])), "Seal(1 keys)");
    }
}

//! `X-Hub-Signature-256` verification: HMAC-SHA256 over the raw body,
//! computed while the body streams in, compared in constant time, against
//! every accepted secret (so secrets can be rotated without dropping
//! deliveries).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A signature check in progress: one HMAC per accepted secret, fed the
/// body as it arrives.
pub struct Verifier {
    macs: Vec<Hmac<Sha256>>,
    expected: [u8; 32],
}

impl Verifier {
    /// Starts checking against `header`, which must be `sha256=` and 64 hex
    /// digits (as GitHub sends it); `None` for anything else, so a malformed
    /// header is refused before a byte of the body is read.
    pub fn new(secrets: &[SecretString], header: &str) -> Option<Verifier> {
        let hex_sig = header.strip_prefix("sha256=")?;
        let mut expected = [0; 32];
        hex::decode_to_slice(hex_sig, &mut expected).ok()?;
        let macs = secrets
            .iter()
            .map(|secret| {
                Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                    .expect("HMAC accepts keys of any length")
            })
            .collect();
        Some(Verifier { macs, expected })
    }

    /// Feeds the next part of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
    }

    /// Whether the whole body fed so far is signed with one of the secrets.
    pub fn verify(self) -> bool {
        // Check every secret, so the time taken does not tell which one matched.
        let expected = self.expected;
        self.macs.into_iter().fold(false, |matched, mac| {
            mac.verify_slice(&expected).is_ok() | matched
        })
    }
}

/// Whether `header` (`sha256=<hex>`) signs `body` with one of `secrets`.
pub fn verify(secrets: &[SecretString], header: &str, body: &[u8]) -> bool {
    Verifier::new(secrets, header).is_some_and(|mut verifier| {
        verifier.update(body);
        verifier.verify()
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
    use proptest::prelude::*;

    /// GitHub's documented test vector ("Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const HEADER: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    /// Feeds `body` to a verifier in the pieces `cuts` makes of it.
    fn streamed(secrets: &[SecretString], header: &str, body: &[u8], cuts: &[usize]) -> bool {
        let Some(mut verifier) = Verifier::new(secrets, header) else {
            return false;
        };
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            verifier.update(&body[start..cut]);
            start = cut;
        }
        verifier.verify()
    }

    #[test]
    fn github_documented_vector() {
        assert_eq!(sign(SECRET, b"Hello, World!"), HEADER);
        assert!(verify(&secrets(&[SECRET]), HEADER, b"Hello, World!"));
    }

    #[test]
    fn github_vector_streamed_byte_by_byte() {
        let mut verifier = Verifier::new(&secrets(&[SECRET]), HEADER).unwrap();
        for byte in b"Hello, World!" {
            verifier.update(&[*byte]);
        }
        assert!(verifier.verify());
    }

    #[test]
    fn rotated_secret_is_accepted() {
        assert!(verify(
            &secrets(&["new-secret", SECRET]),
            HEADER,
            b"Hello, World!"
        ));
        assert!(streamed(
            &secrets(&[SECRET, "new-secret"]),
            HEADER,
            b"Hello, World!",
            &[3, 7]
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
        assert!(!streamed(&s, HEADER, b"Hello, World!!", &[13]));
    }

    /// Everything but `sha256=` and exactly 64 hex digits is refused before
    /// the body is looked at.
    #[test]
    fn malformed_headers_are_refused_up_front() {
        let s = secrets(&[SECRET]);
        let digits = &HEADER["sha256=".len()..];
        for header in [
            "",
            "sha256=",
            "sha256=zz",
            digits,
            &format!("sha1={digits}"),
            &format!("SHA256={digits}"),
            &format!("sha256={}", &digits[..63]),
            &format!("sha256={digits}0"),
            &format!("sha256={digits}00"),
            &format!("sha256= {}", &digits[1..]),
            &format!("sha256={}g", &digits[..63]),
        ] {
            assert!(Verifier::new(&s, header).is_none(), "{header:?}");
        }
        let upper = format!("sha256={}", digits.to_uppercase());
        assert!(Verifier::new(&s, &upper).is_some());
    }

    proptest! {
        /// However the body is cut into frames, the streamed check agrees
        /// with the one-shot check.
        #[test]
        fn streaming_matches_one_shot(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            tamper in proptest::option::of(any::<usize>()),
        ) {
            let s = secrets(&["old", SECRET]);
            let header = sign(SECRET, &body);
            let mut sent = body.clone();
            if let (Some(at), false) = (tamper, sent.is_empty()) {
                let at = at % sent.len();
                sent[at] ^= 1;
            }
            let one_shot = verify(&s, &header, &sent);
            prop_assert_eq!(one_shot, sent == body);
            prop_assert_eq!(streamed(&s, &header, &sent, &cuts), one_shot);
        }
    }
}

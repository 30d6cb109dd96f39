//! Container image references (`host/repo:tag`, `repo@sha256:…`), split
//! into the parts the image clean-up matches on.

/// What an image reference points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The repository path, without the registry host: `team/web`.
    pub repository: String,
    /// The tag, if named; a reference with neither tag nor digest means `latest`.
    pub tag: Option<String>,
    /// The digest, if named: `sha256:…`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits a reference the way Docker reads one. The registry host is
    /// dropped: an ECR repository is matched by name, whatever host (account,
    /// region, dual-stack endpoint) the reference reaches it by, which errs
    /// towards keeping images. `None` for an empty or malformed reference.
    pub fn parse(reference: &str) -> Option<ImageRef> {
        let reference = reference.trim();
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        if digest.is_some_and(|d| d.is_empty() || !d.contains(':')) {
            return None;
        }
        // A tag follows the last ':' after the last '/'; an earlier ':' is
        // a registry port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if tag.is_some_and(str::is_empty) {
            return None;
        }
        let path = match path.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                rest
            }
            _ => path,
        };
        if path.is_empty() || path.split('/').any(str::is_empty) {
            return None;
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest"),
            (tag, _) => tag,
        };
        Some(ImageRef {
            repository: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(reference: &str) -> (String, Option<String>, Option<String>) {
        let r = ImageRef::parse(reference).unwrap_or_else(|| panic!("{reference} parses"));
        (r.repository, r.tag, r.digest)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn ecr_references_by_tag_and_by_digest() {
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parsed(&format!("{host}/demo:abc123")),
            ("demo".into(), some("abc123"), None)
        );
        assert_eq!(
            parsed(&format!("{host}/team/web@{digest}")),
            ("team/web".into(), None, some(&digest))
        );
        assert_eq!(
            parsed(&format!("{host}/demo:v1@{digest}")),
            ("demo".into(), some("v1"), some(&digest))
        );
    }

    #[test]
    fn hosts_ports_and_implicit_latest() {
        assert_eq!(parsed("nginx"), ("nginx".into(), some("latest"), None));
        assert_eq!(
            parsed("library/nginx:1.27"),
            ("library/nginx".into(), some("1.27"), None)
        );
        assert_eq!(
            parsed("localhost:5000/app"),
            ("app".into(), some("latest"), None)
        );
        assert_eq!(
            parsed("registry.example.com:443/team/app:tag"),
            ("team/app".into(), some("tag"), None)
        );
        assert_eq!(parsed("localhost/app:1"), ("app".into(), some("1"), None));
    }

    #[test]
    fn malformed_references_match_nothing() {
        for bad in [
            "",
            "  ",
            "app:",
            "app@",
            "app@sha256",
            "host.com/",
            "a//b:1",
            "/app",
        ] {
            assert_eq!(ImageRef::parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_through_parse(
            host in prop::option::of("[a-z0-9]{1,12}\\.[a-z]{2,5}(:[0-9]{2,5})?"),
            path in "[a-z0-9][a-z0-9._-]{0,10}(/[a-z0-9][a-z0-9._-]{0,10}){0,2}",
            tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in prop::option::of("[0-9a-f]{64}"),
        ) {
            let mut reference = String::new();
            if let Some(host) = &host {
                reference.push_str(host);
                reference.push('/');
            }
            reference.push_str(&path);
            if let Some(tag) = &tag {
                reference.push(':');
                reference.push_str(tag);
            }
            let digest = digest.map(|d| format!("sha256:{d}"));
            if let Some(digest) = &digest {
                reference.push('@');
                reference.push_str(digest);
            }
            let parsed = ImageRef::parse(&reference).unwrap();
            // Without a host, a first segment with a '.' reads as one, as
            // Docker reads it; the rest must be exact.
            if host.is_some() || !path.split('/').next().unwrap().contains('.') || !path.contains('/') {
                prop_assert_eq!(&parsed.repository, &path);
            }
            let want_tag = match (&tag, &digest) {
                (None, None) => Some("latest".to_owned()),
                _ => tag.clone(),
            };
            prop_assert_eq!(parsed.tag, want_tag);
            prop_assert_eq!(parsed.digest, digest);
        }

        #[test]
        fn never_panics(reference in ".{0,80}") {
            let _ = ImageRef::parse(&reference);
        }
    }
}

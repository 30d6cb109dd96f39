//! The shared edge, HTTPS and preview access.

use super::*;

#[test]
fn the_edge_is_shared_when_previews_have_a_zone() {
    let base = "app: demo\nrepository: octo/app\n";
    assert_eq!(parse(base).unwrap().edge_mode(), EdgeMode::Dedicated);
    let zoned = format!("{base}preview:\n  dns_zone: preview.example.com\n  hosted_zone_id: Z1\n");
    let config = parse(&zoned).unwrap();
    assert_eq!(config.edge_mode(), EdgeMode::Shared);
    assert_eq!(config.edge.rules_per_alb, 90);
    assert!(config.edge.certificate_arn.is_empty());
    let kept = parse(&format!("{zoned}edge:\n  mode: dedicated\n")).unwrap();
    assert_eq!(kept.edge_mode(), EdgeMode::Dedicated);
}

#[test]
fn the_shared_edge_needs_a_zone_and_a_sane_rule_count() {
    let base = "app: demo\nrepository: octo/app\n";
    let err = parse(&format!("{base}edge:\n  mode: shared\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: edge.mode: shared needs preview.dns_zone"),
        "{err}"
    );
    let err = parse(&format!("{base}edge:\n  rules_per_alb: 101\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: edge.rules_per_alb: must be between 1 and 100"),
        "{err}"
    );
    let err = parse(&format!(
        "{base}edge:\n  certificate_arn: arn:aws:iam::1:role/x\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "edge.certificate_arn: \"arn:aws:iam::1:role/x\" is not an ACM certificate ARN"
        ),
        "{err}"
    );
}

#[test]
fn production_needs_a_certificate_for_https() {
    let text = "app: demo\nrepository: octo/app\nproduction:\n  enabled: true\n  \
                domain: www.example.com\n  hosted_zone_id: Z1\n  env: {}\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:3:1: production.certificate_arn: required when enabled"),
        "{err}"
    );
    assert!(err.contains("www.example.com"), "{err}");
}

const CERTIFICATE: &str = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c";

const ZONE: &str = "preview:\n  dns_zone: preview.example.com\n  hosted_zone_id: Z1\n";

fn access(zone: &str, access: &str) -> Result<Config, ConfigError> {
    parse(&format!(
        "app: demo\nrepository: octo/app\n{zone}{}  access:\n{access}",
        if zone.is_empty() { "preview:\n" } else { "" }
    ))
}

#[test]
fn access_is_public_unless_told_otherwise() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert!(config.preview.access.is_public());
    assert_eq!(config.preview.access.bypass_header, "X-Pullstack-Bypass");
    let config = access(
        ZONE,
        &format!(
            "    allow_cidrs: [203.0.113.0/24, \"2001:db8::/32\"]\n    oidc:\n      issuer: https://idp.example.com\n      \
             authorization_endpoint: https://idp.example.com/auth\n      \
             token_endpoint: https://idp.example.com/token\n      \
             user_info_endpoint: https://idp.example.com/userinfo\n      client_id: previews\n      \
             client_secret_arn: {SECRET}pullstack/demo/access/oidc-AbCdEf\n    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass-AbCdEf\n"
        ),
    )
    .unwrap();
    let access = &config.preview.access;
    assert!(!access.is_public() && access.needs_login() && access.has_bypass());
    assert_eq!(access.oidc.as_ref().unwrap().scope, "openid");
}

#[test]
fn bad_access_names_its_line_and_field() {
    let cases = [
        (
            "    allow_cidrs: [10.0.0.0/33]\n",
            "pullstack.yaml:7:5: preview.access.allow_cidrs: \"10.0.0.0/33\" is not a CIDR",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8, 10.1.0.0/16, 10.2.0.0/16, 10.3.0.0/16, 10.4.0.0/16]\n",
            "pullstack.yaml:7:5: preview.access.allow_cidrs: at most 4",
        ),
        (
            "    cognito:\n      user_pool_arn: arn:aws:s3:::bucket\n      client_id: c\n      domain: d\n",
            "pullstack.yaml:8:7: preview.access.cognito.user_pool_arn: \"arn:aws:s3:::bucket\" is not a user pool ARN",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8]\n    bypass_secret_arn: hunter2\n",
            "pullstack.yaml:8:5: preview.access.bypass_secret_arn: \"hunter2\" is not a Secrets Manager",
        ),
        (
            &format!("    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass\n"),
            "pullstack.yaml:7:5: preview.access.bypass_secret_arn: previews are public",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8]\n    bypass_header: \"X Bypass\"\n",
            "pullstack.yaml:8:5: preview.access.bypass_header: \"X Bypass\" must be",
        ),
        (
            &format!(
                "    allow_cidrs: [10.0.0.0/8]\n    bypass_secret_arn: {SECRET}pullstack/demo/preview/bypass\n"
            ),
            "pullstack.yaml:8:5: preview.access.bypass_secret_arn: the secret's name must start with pullstack/demo/access/",
        ),
        (
            "    surprise: true\n",
            "pullstack.yaml:7:5: preview.access: unknown field `surprise`",
        ),
    ];
    for (written, expected) in cases {
        let err = access(ZONE, written).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{written}: {err}");
    }
}

#[test]
fn a_login_needs_https_host_rules_in_either_mode() {
    let cognito = "    cognito:\n      user_pool_arn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Ab\n      \
                   client_id: c\n      domain: previews\n";
    assert!(access(ZONE, cognito).is_ok());
    let err = access("", cognito).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:5:5: preview.access.cognito: needs HTTPS: with edge.mode \
             dedicated, set edge.certificate_arn"
        ),
        "{err}"
    );
    // Dedicated mode: a certificate gives each preview's own load balancer
    // HTTPS and host rules, which is all a sign-in needs.
    let dedicated = format!("edge:\n  mode: dedicated\n{ZONE}");
    let err = access(&dedicated, cognito).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:9:5: preview.access.cognito: needs HTTPS"),
        "{err}"
    );
    let certified = format!("edge:\n  mode: dedicated\n  certificate_arn: {CERTIFICATE}\n{ZONE}");
    let config = access(&certified, cognito).unwrap();
    assert_eq!(config.dedicated_certificate(), Some(CERTIFICATE));
    // Source ranges work without HTTPS; the bypass needs the host rules.
    let ranges = "    allow_cidrs: [10.0.0.0/8]\n";
    assert!(access("", ranges).is_ok());
    let bypass = format!("{ranges}    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass\n");
    let err = access("", &bypass).unwrap_err().to_string();
    assert!(
        err.contains("preview.access.bypass_secret_arn: needs HTTPS host rules: with edge.mode dedicated, set edge.certificate_arn"),
        "{err}"
    );
    assert!(access(&certified, &bypass).is_ok());
    // The certificate covers the previews' zone, so dedicated mode needs one.
    let err = parse(&format!(
        "app: demo\nrepository: octo/app\nedge:\n  mode: dedicated\n  certificate_arn: {CERTIFICATE}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:5:3: edge.certificate_arn: in dedicated mode, needs preview.dns_zone"
        ),
        "{err}"
    );
}

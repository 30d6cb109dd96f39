//! Who may reach a preview (`preview.access`): everyone, some source
//! ranges, or people signed in through an OpenID Connect provider or a
//! Cognito user pool, with a header that lets automation past the login.
//!
//! Each is a listener-rule concern: conditions and authenticate actions in
//! front of the preview's forward. Secrets (the OIDC client secret, the
//! bypass value) are Secrets Manager ARNs that CloudFormation resolves, so
//! their values never pass through pullstack.

use serde::Deserialize;

/// The header the bypass rule matches, unless configured.
pub const BYPASS_HEADER: &str = "X-Pullstack-Bypass";

/// How previews get HTTPS, said when an access setting needs it.
const NO_HTTPS: &str = "with edge.mode dedicated, set edge.certificate_arn (an ACM \
     certificate for *.<preview.dns_zone>) with preview.dns_zone and preview.hosted_zone_id, \
     so each preview's own load balancer serves HTTPS; or use the shared edge \
     (edge.mode: shared)";

/// Most source ranges a preview takes: a rule holds five condition values,
/// and its host name is one.
pub const MAX_CIDRS: usize = 4;

/// `preview.access`. Nothing set is `public`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Only these source ranges (IPv4 or IPv6 CIDRs, at most 4) reach a
    /// preview. Default: [] (any source).
    pub allow_cidrs: Vec<String>,
    /// Sign in through an OpenID Connect provider first. Default: none.
    pub oidc: Option<OidcConfig>,
    /// Sign in through a Cognito user pool first. Default: none.
    pub cognito: Option<CognitoConfig>,
    /// A Secrets Manager secret (ARN) whose value, sent in `bypass_header`,
    /// lets a request past the login and the source ranges, for CI, the
    /// ready check and smoke checks. Default: "" (no bypass).
    pub bypass_secret_arn: String,
    /// The header that carries the bypass value. Default: "X-Pullstack-Bypass".
    pub bypass_header: String,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            allow_cidrs: Vec::new(),
            oidc: None,
            cognito: None,
            bypass_secret_arn: String::new(),
            bypass_header: BYPASS_HEADER.to_owned(),
        }
    }
}

/// An OpenID Connect provider (the ALB's `authenticate-oidc` action).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (https). Required.
    pub issuer: String,
    /// Its authorization endpoint (https). Required.
    pub authorization_endpoint: String,
    /// Its token endpoint (https). Required.
    pub token_endpoint: String,
    /// Its user info endpoint (https). Required.
    pub user_info_endpoint: String,
    /// The client id registered with it. Required.
    pub client_id: String,
    /// A Secrets Manager secret (ARN) holding the client secret as its
    /// whole value. Required.
    pub client_secret_arn: String,
    /// Scopes asked for. Default: "openid".
    #[serde(default = "openid")]
    pub scope: String,
}

fn openid() -> String {
    "openid".to_owned()
}

/// A Cognito user pool (the ALB's `authenticate-cognito` action).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CognitoConfig {
    /// The user pool's ARN. Required.
    pub user_pool_arn: String,
    /// The app client id in that pool. Required.
    pub client_id: String,
    /// The pool's domain prefix (or full custom domain). Required.
    pub domain: String,
}

impl AccessConfig {
    /// Whether anyone may reach a preview.
    pub fn is_public(&self) -> bool {
        self.allow_cidrs.is_empty() && !self.needs_login()
    }

    /// Whether a preview asks people to sign in.
    pub fn needs_login(&self) -> bool {
        self.oidc.is_some() || self.cognito.is_some()
    }

    /// Whether a preview has a bypass rule.
    pub fn has_bypass(&self) -> bool {
        !self.bypass_secret_arn.is_empty()
    }

    /// Checks the values; `Err` is (the dotted field, why). `host_rules`
    /// says whether previews are served over HTTPS through host rules (on
    /// the shared edge, or on their own load balancer with a certificate),
    /// which a sign-in and a bypass need.
    pub fn validate(&self, app: &str, host_rules: bool) -> Result<(), (String, String)> {
        let err = |field: &str, message: String| Err((format!("preview.access.{field}"), message));
        if self.allow_cidrs.len() > MAX_CIDRS {
            return err(
                "allow_cidrs",
                format!(
                    "at most {MAX_CIDRS} ranges: a load balancer rule takes five condition \
                     values and the preview's host name is one"
                ),
            );
        }
        for cidr in &self.allow_cidrs {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return err(
                    "allow_cidrs",
                    format!("{cidr:?} is not a CIDR range such as 203.0.113.0/24"),
                );
            }
        }
        if self.oidc.is_some() && self.cognito.is_some() {
            return err(
                "cognito",
                "set oidc or cognito, not both: a preview has one sign-in".into(),
            );
        }
        if !host_rules && self.needs_login() {
            let which = if self.oidc.is_some() {
                "oidc"
            } else {
                "cognito"
            };
            return err(which, format!("needs HTTPS: {NO_HTTPS}"));
        }
        if let Some(oidc) = &self.oidc {
            for (field, url) in [
                ("issuer", &oidc.issuer),
                ("authorization_endpoint", &oidc.authorization_endpoint),
                ("token_endpoint", &oidc.token_endpoint),
                ("user_info_endpoint", &oidc.user_info_endpoint),
            ] {
                if !url.starts_with("https://") || url.len() <= "https://".len() {
                    return err(
                        &format!("oidc.{field}"),
                        format!("{url:?} must be an https:// URL"),
                    );
                }
            }
            if oidc.client_id.is_empty() {
                return err("oidc.client_id", "must not be empty".into());
            }
            check_secret_arn(app, &oidc.client_secret_arn)
                .or_else(|m| err("oidc.client_secret_arn", m))?;
        }
        if let Some(cognito) = &self.cognito {
            let pool = cognito.user_pool_arn.split(':').collect::<Vec<_>>();
            if pool.len() != 6 || pool[2] != "cognito-idp" || !pool[5].starts_with("userpool/") {
                return err(
                    "cognito.user_pool_arn",
                    format!(
                        "{:?} is not a user pool ARN \
                         (arn:aws:cognito-idp:<region>:<account>:userpool/<id>)",
                        cognito.user_pool_arn
                    ),
                );
            }
            if cognito.client_id.is_empty() {
                return err("cognito.client_id", "must not be empty".into());
            }
            if cognito.domain.is_empty() {
                return err("cognito.domain", "must not be empty".into());
            }
        }
        if self.has_bypass() {
            check_secret_arn(app, &self.bypass_secret_arn)
                .or_else(|m| err("bypass_secret_arn", m))?;
            if self.is_public() {
                return err(
                    "bypass_secret_arn",
                    "previews are public, so there is nothing to bypass: set allow_cidrs, \
                     oidc or cognito, or remove it"
                        .into(),
                );
            }
            if !host_rules {
                return err(
                    "bypass_secret_arn",
                    format!("needs HTTPS host rules: {NO_HTTPS}"),
                );
            }
        }
        let header_ok = !self.bypass_header.is_empty()
            && self.bypass_header.len() <= 40
            && self
                .bypass_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !header_ok {
            return err(
                "bypass_header",
                format!(
                    "{:?} must be 1-40 letters, digits, '-' or '_'",
                    self.bypass_header
                ),
            );
        }
        Ok(())
    }
}

/// The prefix of access secrets' names: CloudFormation's identity may read
/// them (`iam/`), a preview's tasks may not.
pub fn secrets_prefix(app: &str) -> String {
    format!("pullstack/{app}/access/")
}

/// Whether `arn` is a Secrets Manager secret's ARN under [`secrets_prefix`].
fn check_secret_arn(app: &str, arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let ok = parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "secretsmanager"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5] == "secret"
        && !parts[6].is_empty()
        && !parts[6].contains(':');
    let prefix = secrets_prefix(app);
    if !ok {
        Err(format!(
            "{arn:?} is not a Secrets Manager secret ARN \
             (arn:aws:secretsmanager:<region>:<account>:secret:{prefix}<name>)"
        ))
    } else if !parts[6].starts_with(&prefix) {
        Err(format!(
            "the secret's name must start with {prefix}, the only access secrets \
             CloudFormation may read (iam/) and that preview tasks may not"
        ))
    } else {
        Ok(())
    }
}

/// A CloudFormation dynamic reference to the whole value of secret `arn`:
/// CloudFormation reads it when it sends the resource, so the value never
/// passes through pullstack.
pub fn resolve_secret(arn: &str) -> String {
    format!("{{{{resolve:secretsmanager:{arn}:SecretString}}}}")
}

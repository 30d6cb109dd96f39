//! The preview edge: shared HTTPS load balancers, or one per preview.

use serde::Deserialize;

/// How previews are reached from the internet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// `shared`: previews are host rules on a pool of HTTPS load balancers
    /// (`<app>-edge-<n>` stacks), reached at `https://<env>.<dns_zone>`;
    /// needs `preview.dns_zone` and `preview.hosted_zone_id`. `dedicated`:
    /// each preview has its own load balancer, on plain HTTP, or on HTTPS
    /// with `certificate_arn`. Default: shared when `preview.dns_zone` is
    /// set, else dedicated.
    pub mode: Option<EdgeMode>,
    /// An ACM certificate for `*.<preview.dns_zone>` in the region. Shared
    /// mode: every shard serves it. Dedicated mode: each preview's own load
    /// balancer serves it on HTTPS:443 (HTTP:80 redirects), with the same
    /// host rules as the shared edge, which `preview.access` sign-ins and
    /// the bypass need. Default: "" (shared: each shard requests one,
    /// validated through a DNS record in `preview.hosted_zone_id`;
    /// dedicated: plain HTTP).
    pub certificate_arn: String,
    /// Preview rules per load balancer before another is added (an ALB
    /// takes 100 rules and 100 target groups; a preview with an automation
    /// bypass takes two rules). Default: 90.
    pub rules_per_alb: u32,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            mode: None,
            certificate_arn: String::new(),
            rules_per_alb: 90,
        }
    }
}

/// The two edge modes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EdgeMode {
    Shared,
    Dedicated,
}

/// The most rules an Application Load Balancer takes, besides its default.
pub const ALB_RULES: u32 = 100;

//! Puts `preview.access` into a preview's template, before its conditions
//! are decided: the source ranges as a `source-ip` condition on its host
//! rule (on the shared edge, or on its own HTTPS load balancer) and, unless
//! a bypass must get past them, as the only sources its own load balancer
//! admits; and a sign-in as an authenticate action in front of the rule's
//! forward. The bypass rule is in the template itself, switched on by its
//! parameters. One rendering serves both edge modes.

use crate::config::{AccessConfig, access::resolve_secret};
use crate::domain::template::TemplateError;
use serde_json::{Value, json};

/// `body` (a JSON template) with `access` applied.
pub fn apply(body: &str, access: &AccessConfig) -> Result<String, TemplateError> {
    if access.is_public() {
        return Ok(body.to_owned());
    }
    let mut doc: Value = serde_json::from_str(body)?;
    let resources = doc.get_mut("Resources").ok_or(TemplateError::NoContainer)?;
    if let Some(rule) = resources.pointer_mut("/ListenerRule/Properties") {
        if !access.allow_cidrs.is_empty()
            && let Some(conditions) = rule.get_mut("Conditions").and_then(Value::as_array_mut)
        {
            conditions.push(json!({
                "Field": "source-ip",
                "SourceIpConfig": { "Values": access.allow_cidrs },
            }));
        }
        if let Some(login) = login(access)
            && let Some(actions) = rule.get_mut("Actions").and_then(Value::as_array_mut)
        {
            actions.insert(0, login);
            for (order, action) in actions.iter_mut().enumerate() {
                action["Order"] = json!(order + 1);
            }
        }
    }
    // The bypass must reach the load balancer from anywhere (CI runners):
    // the host rule's source-ip condition then keeps the others out.
    if let Some(group) = resources.pointer_mut("/LoadBalancerSecurityGroup/Properties")
        && !access.allow_cidrs.is_empty()
        && !access.has_bypass()
    {
        let ingress: Vec<Value> = access
            .allow_cidrs
            .iter()
            .flat_map(|cidr| {
                let key = if cidr.contains(':') {
                    "CidrIpv6"
                } else {
                    "CidrIp"
                };
                [(80, "HTTP"), (443, "HTTPS")].map(|(port, name)| {
                    json!({
                        "Description": format!("{name} from {cidr} (preview.access.allow_cidrs)"),
                        "IpProtocol": "tcp",
                        "FromPort": port,
                        "ToPort": port,
                        key: cidr,
                    })
                })
            })
            .collect();
        group["SecurityGroupIngress"] = ingress.into();
    }
    Ok(doc.to_string())
}

/// The authenticate action for the configured sign-in, if any.
fn login(access: &AccessConfig) -> Option<Value> {
    if let Some(oidc) = &access.oidc {
        return Some(json!({
            "Type": "authenticate-oidc",
            "AuthenticateOidcConfig": {
                "Issuer": oidc.issuer,
                "AuthorizationEndpoint": oidc.authorization_endpoint,
                "TokenEndpoint": oidc.token_endpoint,
                "UserInfoEndpoint": oidc.user_info_endpoint,
                "ClientId": oidc.client_id,
                "ClientSecret": resolve_secret(&oidc.client_secret_arn),
                "Scope": oidc.scope,
                "OnUnauthenticatedRequest": "authenticate",
            },
        }));
    }
    let cognito = access.cognito.as_ref()?;
    Some(json!({
        "Type": "authenticate-cognito",
        "AuthenticateCognitoConfig": {
            "UserPoolArn": cognito.user_pool_arn,
            "UserPoolClientId": cognito.client_id,
            "UserPoolDomain": cognito.domain,
            "Scope": "openid",
            "OnUnauthenticatedRequest": "authenticate",
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CognitoConfig, OidcConfig};

    const SECRET: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:pullstack/demo/access/oidc-AbCdEf";

    fn template() -> String {
        let yaml: Value = serde_yaml::from_str(crate::domain::template::PREVIEW).unwrap();
        yaml.to_string()
    }

    fn oidc() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example.com".into(),
            authorization_endpoint: "https://idp.example.com/auth".into(),
            token_endpoint: "https://idp.example.com/token".into(),
            user_info_endpoint: "https://idp.example.com/userinfo".into(),
            client_id: "previews".into(),
            client_secret_arn: SECRET.into(),
            scope: "openid".into(),
        }
    }

    #[test]
    fn public_leaves_the_template_alone() {
        let body = template();
        assert_eq!(apply(&body, &AccessConfig::default()).unwrap(), body);
    }

    #[test]
    fn a_login_goes_in_front_of_the_forward_with_its_secret_as_a_reference() {
        let access = AccessConfig {
            oidc: Some(oidc()),
            ..AccessConfig::default()
        };
        let doc: Value = serde_json::from_str(&apply(&template(), &access).unwrap()).unwrap();
        let actions = doc
            .pointer("/Resources/ListenerRule/Properties/Actions")
            .unwrap();
        assert_eq!(actions[0]["Type"], "authenticate-oidc");
        assert_eq!(actions[0]["Order"], 1);
        assert_eq!(
            actions[0]["AuthenticateOidcConfig"]["ClientSecret"],
            format!("{{{{resolve:secretsmanager:{SECRET}:SecretString}}}}")
        );
        assert_eq!(actions[1]["Type"], "forward");
        assert_eq!(actions[1]["Order"], 2);

        let access = AccessConfig {
            cognito: Some(CognitoConfig {
                user_pool_arn: "arn:aws:cognito-idp:us-east-1:123456789012:userpool/x".into(),
                client_id: "c".into(),
                domain: "d".into(),
            }),
            ..AccessConfig::default()
        };
        let doc: Value = serde_json::from_str(&apply(&template(), &access).unwrap()).unwrap();
        let actions = doc
            .pointer("/Resources/ListenerRule/Properties/Actions")
            .unwrap();
        assert_eq!(actions[0]["Type"], "authenticate-cognito");
        assert_eq!(
            actions[0]["AuthenticateCognitoConfig"]["UserPoolDomain"],
            "d"
        );
        assert_eq!(actions[1]["Order"], 2);
    }

    #[test]
    fn source_ranges_restrict_the_rule_and_the_own_load_balancer() {
        let access = AccessConfig {
            allow_cidrs: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
            ..AccessConfig::default()
        };
        let doc: Value = serde_json::from_str(&apply(&template(), &access).unwrap()).unwrap();
        let conditions = doc
            .pointer("/Resources/ListenerRule/Properties/Conditions")
            .unwrap();
        assert_eq!(conditions[1]["Field"], "source-ip");
        assert_eq!(
            conditions[1]["SourceIpConfig"]["Values"],
            json!(["203.0.113.0/24", "2001:db8::/32"])
        );
        let ingress = doc
            .pointer("/Resources/LoadBalancerSecurityGroup/Properties/SecurityGroupIngress")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(ingress.len(), 4);
        assert!(
            ingress
                .iter()
                .all(|rule| rule.get("CidrIp") != Some(&json!("0.0.0.0/0")))
        );
        assert_eq!(ingress[2]["CidrIpv6"], "2001:db8::/32");
        assert_eq!(ingress[3]["FromPort"], 443);
    }
}

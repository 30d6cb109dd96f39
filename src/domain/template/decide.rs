//! Decides a template's conditions from its parameters before it is sent:
//! resources and outputs they rule out are left out and each `Fn::If`
//! becomes its chosen branch. A stack then holds exactly what its mode
//! needs, and a change of mode removes what the old one had, on AWS and on
//! emulators that keep conditional resources alike.

use super::TemplateError;
use std::collections::BTreeMap;

/// Decides the conditions of the JSON template `body` from `parameters`
/// (and the template's defaults): drops the resources and outputs whose
/// condition is false, replaces each `Fn::If` by its chosen branch (a
/// chosen `AWS::NoValue` removes the property), and drops the conditions.
pub fn decide(body: &str, parameters: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    use serde_json::Value;
    let mut doc: Value = serde_json::from_str(body)?;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    if let Some(declared) = doc.get("Parameters").and_then(Value::as_object) {
        for (name, spec) in declared {
            if let Some(default) = spec.get("Default") {
                let text = match default {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                values.insert(name.clone(), text);
            }
        }
    }
    values.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
    let conditions = doc
        .as_object_mut()
        .and_then(|d| d.remove("Conditions"))
        .unwrap_or(Value::Null);
    let mut decided: BTreeMap<String, bool> = BTreeMap::new();
    if let Some(all) = conditions.as_object() {
        for name in all.keys() {
            condition(name, all, &values, &mut decided, 0)?;
        }
    }
    for section in ["Resources", "Outputs"] {
        if let Some(entries) = doc.get_mut(section).and_then(Value::as_object_mut) {
            let mut dropped = Vec::new();
            for (name, entry) in entries.iter_mut() {
                if let Some(Value::String(cond)) =
                    entry.as_object_mut().and_then(|e| e.remove("Condition"))
                {
                    let holds = *decided
                        .get(&cond)
                        .ok_or_else(|| TemplateError::Undecidable(cond.clone()))?;
                    if !holds {
                        dropped.push(name.clone());
                    }
                }
            }
            for name in dropped {
                entries.remove(&name);
            }
        }
    }
    choose(&mut doc, &decided)?;
    Ok(doc.to_string())
}

/// Whether condition `name` holds.
fn condition(
    name: &str,
    all: &serde_json::Map<String, serde_json::Value>,
    values: &BTreeMap<String, String>,
    decided: &mut BTreeMap<String, bool>,
    depth: usize,
) -> Result<bool, TemplateError> {
    if let Some(known) = decided.get(name) {
        return Ok(*known);
    }
    let undecidable = || TemplateError::Undecidable(name.to_owned());
    let expr = all
        .get(name)
        .filter(|_| depth < 32)
        .ok_or_else(undecidable)?;
    let holds = evaluate(expr, all, values, decided, depth).ok_or_else(undecidable)??;
    decided.insert(name.to_owned(), holds);
    Ok(holds)
}

/// The value of a condition expression; `None` for one outside the forms
/// the templates use (`Fn::Equals` of literals and `Ref`s, `Fn::Not`,
/// `Fn::And`, `Fn::Or`, `Condition`).
fn evaluate(
    expr: &serde_json::Value,
    all: &serde_json::Map<String, serde_json::Value>,
    values: &BTreeMap<String, String>,
    decided: &mut BTreeMap<String, bool>,
    depth: usize,
) -> Option<Result<bool, TemplateError>> {
    use serde_json::Value;
    let (op, args) = expr.as_object().filter(|o| o.len() == 1)?.iter().next()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o
            .get("Ref")
            .and_then(Value::as_str)
            .and_then(|p| values.get(p).cloned()),
        _ => None,
    };
    let mut each = |list: &Value| -> Option<Result<Vec<bool>, TemplateError>> {
        let mut out = Vec::new();
        for item in list.as_array()? {
            match evaluate(item, all, values, decided, depth + 1)? {
                Ok(v) => out.push(v),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(out))
    };
    Some(Ok(match op.as_str() {
        "Condition" => {
            return Some(condition(args.as_str()?, all, values, decided, depth + 1));
        }
        "Fn::Equals" => {
            let pair = args.as_array().filter(|a| a.len() == 2)?;
            text(&pair[0])? == text(&pair[1])?
        }
        "Fn::Not" => match each(args)? {
            Ok(v) if v.len() == 1 => !v[0],
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        },
        "Fn::And" => match each(args)? {
            Ok(v) => v.iter().all(|b| *b),
            Err(e) => return Some(Err(e)),
        },
        "Fn::Or" => match each(args)? {
            Ok(v) => v.iter().any(|b| *b),
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    }))
}

/// Replaces every `Fn::If` under `value` by its chosen branch.
fn choose(
    value: &mut serde_json::Value,
    decided: &BTreeMap<String, bool>,
) -> Result<(), TemplateError> {
    use serde_json::Value;
    fn no_value(v: &Value) -> bool {
        v.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue")
    }
    while let Some(args) = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("Fn::If"))
        .and_then(Value::as_array)
        .filter(|a| a.len() == 3)
    {
        let name = args[0].as_str().unwrap_or_default().to_owned();
        let holds = *decided.get(&name).ok_or(TemplateError::Undecidable(name))?;
        *value = args[if holds { 1 } else { 2 }].clone();
    }
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                choose(child, decided)?;
            }
            map.retain(|_, v| !no_value(v));
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                choose(child, decided)?;
            }
            items.retain(|v| !no_value(v));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::{EDGE, PREVIEW, Placeholders, render};

    /// The preview template as sent with `parameters`, conditions decided.
    fn decided(parameters: &[(&str, &str)]) -> serde_json::Value {
        let body = render(
            PREVIEW,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Placeholders::default(),
        )
        .unwrap();
        let parameters = parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sent = decide(&body, &parameters).unwrap();
        assert!(
            !sent.contains("Fn::If") && !sent.contains("\"Condition\":"),
            "{sent}"
        );
        serde_json::from_str(&sent).unwrap()
    }

    fn resources(doc: &serde_json::Value) -> Vec<&str> {
        doc["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    const DNS: [(&str, &str); 2] = [
        ("HostedZoneId", "Z123"),
        ("DnsName", "pr-42.preview.example.com"),
    ];

    #[test]
    fn a_dedicated_preview_has_its_own_load_balancer_on_http() {
        let doc = decided(&DNS);
        let held = resources(&doc);
        for name in ["LoadBalancer", "TargetGroup", "Listener", "DnsRecord"] {
            assert!(held.contains(&name), "{name} missing: {held:?}");
        }
        for name in [
            "ListenerRule",
            "EdgeTargetGroup",
            "HttpsListener",
            "RedirectListener",
        ] {
            assert!(!held.contains(&name), "{name} present: {held:?}");
        }
        assert_eq!(
            doc["Outputs"]["Url"]["Value"]["Fn::Sub"],
            "http://${DnsName}"
        );
        // No task role: the property is left out, not sent empty.
        let task = &doc["Resources"]["TaskDefinition"]["Properties"];
        assert!(task.get("TaskRoleArn").is_none());
        assert!(doc["Outputs"].get("TaskRoleArn").is_none());
    }

    #[test]
    fn a_shared_preview_holds_a_rule_and_no_load_balancer() {
        let mut parameters = DNS.to_vec();
        parameters.extend([
            (
                "ListenerArn",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/e/1/2",
            ),
            ("RulePriority", "7"),
            ("EdgeSecurityGroupId", "sg-0123456789abcdef0"),
            ("EdgeDnsName", "edge-1.us-east-1.elb.amazonaws.com"),
            ("EdgeHostedZoneId", "Z35SXDOTRQ7X7K"),
        ]);
        let doc = decided(&parameters);
        let held = resources(&doc);
        for name in [
            "LoadBalancer",
            "LoadBalancerSecurityGroup",
            "TargetGroup",
            "Listener",
        ] {
            assert!(!held.contains(&name), "{name} present: {held:?}");
        }
        let rule = &doc["Resources"]["ListenerRule"]["Properties"];
        assert_eq!(rule["Priority"]["Ref"], "RulePriority");
        assert_eq!(
            rule["Actions"][0]["TargetGroupArn"]["Ref"],
            "EdgeTargetGroup"
        );
        let ingress =
            &doc["Resources"]["ServiceSecurityGroup"]["Properties"]["SecurityGroupIngress"][0];
        assert_eq!(
            ingress["SourceSecurityGroupId"]["Ref"],
            "EdgeSecurityGroupId"
        );
        let alias = &doc["Resources"]["DnsRecord"]["Properties"]["AliasTarget"];
        assert_eq!(alias["DNSName"]["Ref"], "EdgeDnsName");
        assert_eq!(
            doc["Outputs"]["Url"]["Value"]["Fn::Sub"],
            "https://${DnsName}"
        );
        assert!(doc["Outputs"].get("LoadBalancerArn").is_none());
    }

    #[test]
    fn a_certificate_gives_a_dedicated_load_balancer_https() {
        let doc = decided(&[
            ("EnvironmentRole", "production"),
            (
                "CertificateArn",
                "arn:aws:acm:us-east-1:123456789012:certificate/abc",
            ),
        ]);
        let held = resources(&doc);
        assert!(held.contains(&"HttpsListener") && held.contains(&"RedirectListener"));
        assert!(!held.contains(&"Listener"), "{held:?}");
        let redirect = &doc["Resources"]["RedirectListener"]["Properties"]["DefaultActions"][0];
        assert_eq!(redirect["RedirectConfig"]["StatusCode"], "HTTP_301");
        assert_eq!(
            doc["Outputs"]["Url"]["Value"]["Fn::Sub"],
            "https://${LoadBalancer.DNSName}"
        );
    }

    #[test]
    fn a_dedicated_preview_with_a_certificate_routes_by_host_rules() {
        let mut parameters = DNS.to_vec();
        parameters.extend([
            (
                "CertificateArn",
                "arn:aws:acm:us-east-1:123456789012:certificate/abc",
            ),
            ("RulePriority", "2"),
            ("BypassRulePriority", "1"),
            (
                "BypassSecretArn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:pullstack/demo/access/ci",
            ),
        ]);
        let doc = decided(&parameters);
        let held = resources(&doc);
        for name in [
            "LoadBalancer",
            "TargetGroup",
            "HttpsListener",
            "RedirectListener",
            "ListenerRule",
            "BypassRule",
        ] {
            assert!(held.contains(&name), "{name} missing: {held:?}");
        }
        assert!(!held.contains(&"EdgeTargetGroup"), "{held:?}");
        let https = &doc["Resources"]["HttpsListener"]["Properties"];
        assert_eq!(https["DefaultActions"][0]["Type"], "fixed-response");
        assert_eq!(
            https["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"],
            "404"
        );
        for rule in ["ListenerRule", "BypassRule"] {
            let rule = &doc["Resources"][rule]["Properties"];
            assert_eq!(rule["ListenerArn"]["Ref"], "HttpsListener");
            assert_eq!(rule["Actions"][0]["TargetGroupArn"]["Ref"], "TargetGroup");
        }
        let attached = &doc["Resources"]["TrafficAttached"]["Metadata"]["Attachment"];
        assert_eq!(attached["Ref"], "ListenerRule");
        assert_eq!(
            doc["Outputs"]["Url"]["Value"]["Fn::Sub"],
            "https://${DnsName}"
        );

        // Production keeps one listener that forwards everything.
        parameters.push(("EnvironmentRole", "production"));
        let doc = decided(&parameters);
        let held = resources(&doc);
        assert!(!held.contains(&"ListenerRule") && !held.contains(&"BypassRule"));
        let https = &doc["Resources"]["HttpsListener"]["Properties"];
        assert_eq!(https["DefaultActions"][0]["Type"], "forward");
    }

    #[test]
    fn a_condition_of_an_unknown_form_is_refused() {
        let body = r#"{"Conditions":{"C":{"Fn::Contains":[["a"],"a"]}},"Resources":{}}"#;
        assert!(matches!(
            decide(body, &BTreeMap::new()),
            Err(TemplateError::Undecidable(name)) if name == "C"
        ));
    }

    #[test]
    fn the_edge_template_requests_a_certificate_only_without_one() {
        let body = serde_yaml::from_str::<serde_json::Value>(EDGE)
            .unwrap()
            .to_string();
        let with = |arn: &str| {
            let parameters = BTreeMap::from([("CertificateArn".to_owned(), arn.to_owned())]);
            let doc: serde_json::Value =
                serde_json::from_str(&decide(&body, &parameters).unwrap()).unwrap();
            doc["Resources"].get("Certificate").is_some()
        };
        assert!(with(""));
        assert!(!with("arn:aws:acm:us-east-1:123456789012:certificate/abc"));
    }
}

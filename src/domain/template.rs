//! Renders an environment's CloudFormation template.
//!
//! The templates in `templates/` are plain YAML (long-form intrinsics only), so
//! they parse as data. The container's environment variables and secret
//! references are filled in here, per environment, and the result is sent as
//! JSON. Secret values never pass through pullstack: only their ARNs do.
//!
//! Before a template is sent, its conditions are decided from the
//! parameters ([`decide`], in its own module).

mod decide;

pub use decide::decide;
use std::collections::BTreeMap;

/// The preview (and production) template, shipped inside the binary.
pub const PREVIEW: &str = include_str!("../../templates/preview.yaml");
/// The shared stack's template.
pub const SHARED: &str = include_str!("../../templates/shared.yaml");
/// An edge shard's template: a shared HTTPS load balancer for previews.
pub const EDGE: &str = include_str!("../../templates/edge.yaml");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("template has no AWS::ECS::TaskDefinition with a container definition")]
    NoContainer,
    #[error("template condition {0} cannot be decided from the parameters")]
    Undecidable(String),
}

/// Values for `{placeholder}`s in configured environment variables.
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    pub pr: Option<u64>,
    pub branch: String,
    pub sha: String,
    pub url: String,
    pub env: String,
}

impl Placeholders {
    /// Replaces `{pr}`, `{branch}`, `{sha}`, `{sha7}`, `{url}` and `{env}` in
    /// one pass, so a value can never inject another placeholder.
    pub fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail.find('}').map(|e| e + 1);
            let value = end.and_then(|end| self.lookup(&tail[1..end - 1]));
            match (end, value) {
                (Some(end), Some(value)) => {
                    out.push_str(&value);
                    rest = &tail[end..];
                }
                _ => {
                    out.push('{');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn lookup(&self, name: &str) -> Option<String> {
        Some(match name {
            "pr" => self.pr.map(|n| n.to_string()).unwrap_or_default(),
            "branch" => self.branch.clone(),
            "sha" => self.sha.clone(),
            "sha7" => crate::domain::naming::short_sha(&self.sha).to_owned(),
            "url" => self.url.clone(),
            "env" => self.env.clone(),
            _ => return None,
        })
    }
}

/// Renders `template` (YAML) to a JSON template body with the container's
/// `Environment` and `Secrets` filled in.
pub fn render(
    template: &str,
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
    placeholders: &Placeholders,
) -> Result<String, TemplateError> {
    let mut doc: serde_json::Value = serde_yaml::from_str(template)?;
    let container = doc
        .get_mut("Resources")
        .and_then(|r| r.as_object_mut())
        .and_then(|resources| {
            resources
                .values_mut()
                .find(|r| r["Type"] == "AWS::ECS::TaskDefinition")
        })
        .and_then(|task| task.pointer_mut("/Properties/ContainerDefinitions/0"))
        .and_then(|c| c.as_object_mut())
        .ok_or(TemplateError::NoContainer)?;
    let environment: Vec<_> = env
        .iter()
        .map(|(name, value)| serde_json::json!({"Name": name, "Value": placeholders.render(value)}))
        .collect();
    let secrets: Vec<_> = secrets
        .iter()
        .map(|(name, arn)| serde_json::json!({"Name": name, "ValueFrom": arn}))
        .collect();
    container.insert("Environment".into(), environment.into());
    container.insert("Secrets".into(), secrets.into());
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders() -> Placeholders {
        Placeholders {
            pr: Some(42),
            branch: "feature/{sha}".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            url: "http://pr-42.example.com".into(),
            env: "pr-42".into(),
        }
    }

    #[test]
    fn placeholders_render_once() {
        let p = placeholders();
        assert_eq!(p.render("{pr}-{sha7}"), "42-0123456");
        // The branch value contains `{sha}` but is not expanded again.
        assert_eq!(p.render("b={branch}"), "b=feature/{sha}");
        assert_eq!(p.render("{unknown} {"), "{unknown} {");
        assert_eq!(p.render("{url}/api"), "http://pr-42.example.com/api");
    }

    #[test]
    fn shipped_template_gets_env_and_secrets() {
        let env = BTreeMap::from([("APP_URL".to_owned(), "{url}".to_owned())]);
        let secrets = BTreeMap::from([(
            "DB_PASSWORD".to_owned(),
            "arn:aws:ssm:us-east-1:123456789012:parameter/pullstack/demo/db".to_owned(),
        )]);
        let body = render(PREVIEW, &env, &secrets, &placeholders()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let task = doc["Resources"]
            .as_object()
            .unwrap()
            .values()
            .find(|r| r["Type"] == "AWS::ECS::TaskDefinition")
            .unwrap();
        let container = &task["Properties"]["ContainerDefinitions"][0];
        assert_eq!(
            container["Environment"][0]["Value"],
            "http://pr-42.example.com"
        );
        assert_eq!(container["Secrets"][0]["Name"], "DB_PASSWORD");
        assert!(body.len() < 51_200, "TemplateBody limit");
    }

    #[test]
    fn the_execution_role_output_is_the_task_definitions_role() {
        // moto keeps no roles on the task definitions CloudFormation makes,
        // so the end-to-end tests read the role from this output: it must
        // be the very expression the task definition uses.
        let doc: serde_json::Value = serde_yaml::from_str(PREVIEW).unwrap();
        let task = &doc["Resources"]["TaskDefinition"]["Properties"];
        let outputs = &doc["Outputs"];
        assert_eq!(
            task["ExecutionRoleArn"],
            outputs["ExecutionRoleArn"]["Value"]
        );
        let role = task["ExecutionRoleArn"].to_string();
        assert!(
            role.contains("-ProductionExecutionRoleArn")
                && role.contains("-PreviewExecutionRoleArn")
        );
        assert_eq!(
            task["TaskRoleArn"]["Fn::If"][1],
            outputs["TaskRoleArn"]["Value"]
        );
    }

    #[test]
    fn template_without_task_definition_is_rejected() {
        let err = render(
            "Resources: {}",
            &BTreeMap::new(),
            &BTreeMap::new(),
            &placeholders(),
        );
        assert!(matches!(err, Err(TemplateError::NoContainer)));
    }
}

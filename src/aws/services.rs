//! ECS: restarting an environment's tasks without changing its stack.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::ProvideErrorMetadata;

#[derive(Debug, thiserror::Error)]
#[error("ECS UpdateService {service}: {code}: {message}")]
pub struct ServiceError {
    service: String,
    code: String,
    message: String,
}

#[derive(Clone)]
pub struct Services {
    client: Client,
}

impl Services {
    pub fn new(client: Client) -> Services {
        Services { client }
    }

    /// Starts a fresh deployment of the service's current task definition,
    /// for `/pullstack redeploy` when the stack itself has nothing to change.
    pub async fn restart(&self, cluster: &str, service: &str) -> Result<(), ServiceError> {
        self.client
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|err| ServiceError {
                service: service.to_owned(),
                code: err.code().unwrap_or("Unknown").to_owned(),
                message: err.message().map_or_else(|| err.to_string(), str::to_owned),
            })?;
        Ok(())
    }
}

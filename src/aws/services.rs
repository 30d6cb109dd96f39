//! ECS: restarting an environment's tasks without changing its stack.

use super::error::{Error, Result};
use aws_sdk_ecs::Client;

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
    pub async fn restart(&self, cluster: &str, service: &str) -> Result<()> {
        self.client
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|err| {
                Error::from_sdk("ECS", "UpdateService", format!("{cluster}/{service}"), &err)
            })?;
        Ok(())
    }
}

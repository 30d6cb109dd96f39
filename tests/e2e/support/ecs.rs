//! What ECS holds for a test's previews, read from moto: a PR's service and
//! the container its task definition runs.

use super::World;
use aws_sdk_ecs::types::{ContainerDefinition, Service};
use std::collections::BTreeMap;

/// PR `number`'s ECS service, as its stack names it.
pub async fn service(world: &World, number: u64) -> Service {
    let stack = world.stack(number).await.expect("the stack exists");
    let described = aws_sdk_ecs::Client::new(&world.sdk)
        .describe_services()
        .cluster(stack.output("ClusterName").expect("ClusterName output"))
        .services(stack.output("ServiceName").expect("ServiceName output"))
        .send()
        .await
        .expect("describe the service");
    described.services()[0].clone()
}

/// The (first) container of task definition `arn`.
pub async fn container(world: &World, arn: &str) -> ContainerDefinition {
    let described = aws_sdk_ecs::Client::new(&world.sdk)
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .expect("describe the task definition");
    let task = described.task_definition().expect("a task definition");
    task.container_definitions()[0].clone()
}

/// A container's environment variables, by name.
pub fn env(container: &ContainerDefinition) -> BTreeMap<String, String> {
    (container.environment().iter())
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_owned(),
                kv.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

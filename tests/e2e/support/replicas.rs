//! Start-up shared by the tests of replicas on the shared SQS queue
//! (`queue.backend: sqs`), for one repository or many.

use super::World;
use super::fault_proxy::FaultProxy;
use pullstack::aws::Aws;
use std::time::Duration;

/// The SQS backend with leases of `lease_ttl`, without long polls: moto's
/// hand out a message of a group that another receive took while they
/// waited.
pub fn sqs_config(lease_ttl: Duration) -> String {
    format!(
        "queue:\n  backend: sqs\n  sqs:\n    lease_ttl: {}s\n    receive_wait: 0s\n",
        lease_ttl.as_secs()
    )
}

/// AWS clients through a proxy that adds no faults: it counts what moto
/// answered, and passes receives one at a time, as SQS serves them.
pub async fn counted(world: &World) -> (FaultProxy, Aws) {
    let proxy = FaultProxy::start(&super::moto_endpoint()).await;
    proxy.one_at_a_time("ReceiveMessage");
    let sdk = proxy.sdk_config(&world.sdk, 3, Duration::from_millis(20));
    (proxy, Aws::from_config(&sdk))
}

/// AWS clients whose `ReceiveMessage` calls are held until the server
/// using them is killed: it takes deliveries but never receives work.
pub async fn receives_held(world: &World) -> (FaultProxy, Aws) {
    let proxy = FaultProxy::start(&super::moto_endpoint()).await;
    proxy.hold("ReceiveMessage");
    let sdk = proxy.sdk_config(&world.sdk, 1, Duration::from_millis(10));
    (proxy, Aws::from_config(&sdk))
}

//! Counts every AWS request attempt, by service and operation, on
//! `/metrics` (`pullstack_aws_requests_total`). Operators see what pullstack
//! costs in API calls; the benchmarks read the same figures.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The interceptor added to every client pullstack builds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metered;

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "pullstack::Metered"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            metrics::counter!(
                "pullstack_aws_requests_total",
                "service" => metadata.service().to_owned(),
                "operation" => metadata.name().to_owned(),
            )
            .increment(1);
        }
        Ok(())
    }
}

//! The one error every AWS client here returns: which call failed on what,
//! AWS's code and message, and a kind that says what a caller can do about it.
//!
//! The kind is read from the error code (and, for CloudFormation, which
//! reports most failures as `ValidationError`, from the message), so callers
//! branch on `kind()` instead of matching service-specific strings.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub type Result<T> = std::result::Result<T, Error>;

/// What a caller can do about an AWS error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The API's rate limit: try again later.
    Throttled,
    /// The resource does not exist (or no longer does).
    NotFound,
    /// Another operation holds the resource: try again once it finishes.
    Conflict,
    /// The request itself is wrong: retrying will not help.
    Validation,
    /// Anything else, including failures with no response (timeouts, dispatch).
    Other,
}

/// Codes AWS uses for rate limiting. The SDK's own retry policy already
/// retries these; a caller sees them only once its attempts are spent.
/// `LimitExceededException` is left out: CloudFormation and ECR use it for a
/// quota, which waiting does not lift.
const THROTTLING: [&str; 12] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
    "EC2ThrottledException",
    "SlowDown",
    // Route53: a previous change batch on the zone is still applying.
    "PriorRequestNotComplete",
];

impl ErrorKind {
    /// Classifies an AWS error by its code, and its message where the code
    /// alone is too broad (CloudFormation's `ValidationError`).
    pub fn of(code: &str, message: &str) -> ErrorKind {
        if THROTTLING.contains(&code) {
            return ErrorKind::Throttled;
        }
        // CloudFormation says "Stack with id X does not exist" and "Stack X
        // is in UPDATE_IN_PROGRESS state and can not be updated" with the
        // same code as a malformed template.
        if code == "ValidationError" {
            if message.contains("does not exist") {
                return ErrorKind::NotFound;
            }
            if message.contains("_IN_PROGRESS state") {
                return ErrorKind::Conflict;
            }
            return ErrorKind::Validation;
        }
        if code.contains("NotFound") || code.starts_with("NoSuch") {
            return ErrorKind::NotFound;
        }
        if code.contains("InUse")
            || code.contains("AlreadyExists")
            || code.starts_with("OperationInProgress")
            || code.starts_with("ConcurrentModification")
            || code.starts_with("ConcurrentUpdate")
            || code == "UpdateInProgressException"
            || code == "ConflictException"
        {
            return ErrorKind::Conflict;
        }
        if code.starts_with("Validation")
            || code.starts_with("InvalidParameter")
            || code.starts_with("InvalidInput")
            || code.starts_with("InvalidRequest")
            || code.starts_with("MissingParameter")
            || code.starts_with("MissingRequiredParameter")
            || code == "InvalidChangeBatch"
        {
            return ErrorKind::Validation;
        }
        ErrorKind::Other
    }
}

/// A failed AWS call. The message is AWS's own, which names resources but
/// never carries credentials.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation}{}: {code}: {message}", on(.resource))]
pub struct Error {
    pub kind: ErrorKind,
    /// "CloudFormation", "Route53", "ECR"…
    pub service: &'static str,
    /// The API operation, as AWS names it: "CreateStack".
    pub operation: &'static str,
    /// What the call was about (a stack, a zone, a repository), or empty.
    pub resource: String,
    /// AWS's error code, or what failed when there was no answer
    /// ("dispatch", "timeout").
    pub code: String,
    pub message: String,
}

/// " resource", or nothing when there is none to name.
fn on(resource: &str) -> String {
    if resource.is_empty() {
        String::new()
    } else {
        format!(" {resource}")
    }
}

impl Error {
    /// An error made here rather than by an SDK call (a per-item failure in
    /// a batch answer, a request that could not be built).
    pub fn new(
        kind: ErrorKind,
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error {
            kind,
            service,
            operation,
            resource: resource.into(),
            code: code.into(),
            message: message.into(),
        }
    }

    /// The error a call to `service`'s `operation` on `resource` failed with.
    pub fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        err: &SdkError<E, R>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        // The SDK's own Display says only "dispatch failure": the context
        // chain says why.
        let message = err
            .message()
            .map_or_else(|| DisplayErrorContext(err).to_string(), str::to_owned);
        let (kind, code) = match err {
            SdkError::ServiceError(_) => match err.code() {
                Some(code) => (ErrorKind::of(code, &message), code),
                None => (ErrorKind::Other, "Unknown"),
            },
            SdkError::TimeoutError(_) => (ErrorKind::Other, "timeout"),
            SdkError::DispatchFailure(_) => (ErrorKind::Other, "dispatch"),
            SdkError::ResponseError(_) => (ErrorKind::Other, "response"),
            SdkError::ConstructionFailure(_) => (ErrorKind::Other, "construction"),
            _ => (ErrorKind::Other, "Unknown"),
        };
        Error::new(kind, service, operation, resource, code, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same call may succeed if made again a little later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    #[test]
    fn codes_are_classified() {
        let cases = [
            ("Throttling", "Rate exceeded", Throttled),
            ("ThrottlingException", "", Throttled),
            ("TooManyRequestsException", "", Throttled),
            ("RequestLimitExceeded", "", Throttled),
            (
                "PriorRequestNotComplete",
                "The request was rejected",
                Throttled,
            ),
            ("SlowDown", "", Throttled),
            ("ImageNotFoundException", "", NotFound),
            ("RepositoryNotFoundException", "", NotFound),
            ("LoadBalancerNotFound", "", NotFound),
            ("NoSuchHostedZone", "", NotFound),
            ("ResourceInUseException", "", Conflict),
            ("ResourceInUse", "", Conflict),
            ("AlreadyExistsException", "", Conflict),
            ("RepositoryAlreadyExistsException", "", Conflict),
            ("OperationInProgressException", "", Conflict),
            ("ConcurrentModification", "", Conflict),
            ("InvalidParameterValue", "", Validation),
            ("InvalidParameterException", "", Validation),
            ("InvalidInput", "", Validation),
            ("InvalidChangeBatch", "", Validation),
            ("ValidationException", "", Validation),
            ("LimitExceededException", "Limit on stacks reached", Other),
            ("AccessDenied", "", Other),
            ("UnrecognizedClientException", "", Other),
            ("dispatch", "connection refused", Other),
        ];
        for (code, message, kind) in cases {
            assert_eq!(ErrorKind::of(code, message), kind, "{code}: {message}");
        }
    }

    #[test]
    fn cloudformation_validation_errors_are_told_apart_by_message() {
        let of = |m| ErrorKind::of("ValidationError", m);
        assert_eq!(of("Stack with id pr-4 does not exist"), NotFound);
        assert_eq!(
            of(
                "Stack:arn:aws:cloudformation:eu-west-1:1:stack/pr-4/x is in \
                UPDATE_IN_PROGRESS state and can not be updated."
            ),
            Conflict
        );
        assert_eq!(
            of("Stack pr-4 is in DELETE_IN_PROGRESS state and can not be updated."),
            Conflict
        );
        assert_eq!(of("Template format error: unsupported"), Validation);
        assert_eq!(of("No updates are to be performed."), Validation);
    }

    #[test]
    fn sdk_errors_keep_code_and_message() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        use aws_smithy_types::error::ErrorMetadata;

        let service = SdkError::<ErrorMetadata, ()>::service_error(
            ErrorMetadata::builder()
                .code("ValidationError")
                .message("Stack with id pr-4 does not exist")
                .build(),
            (),
        );
        let error = Error::from_sdk("CloudFormation", "DescribeStacks", "pr-4", &service);
        assert_eq!(error.kind(), NotFound);
        assert_eq!(
            error.to_string(),
            "CloudFormation DescribeStacks pr-4: ValidationError: Stack with id pr-4 does not exist"
        );

        let dispatch = SdkError::<ErrorMetadata, ()>::dispatch_failure(ConnectorError::io(
            "connection refused".into(),
        ));
        let error = Error::from_sdk("Route53", "ChangeResourceRecordSets", "Z1", &dispatch);
        assert_eq!((error.kind(), error.code.as_str()), (Other, "dispatch"));
        assert!(error.message.contains("connection refused"), "{error}");
    }

    #[test]
    fn retryable_kinds() {
        let error = |kind| Error::new(kind, "Route53", "ChangeResourceRecordSets", "", "x", "y");
        assert!(error(Throttled).is_retryable());
        assert!(error(Conflict).is_retryable());
        assert!(!error(NotFound).is_retryable());
        assert!(!error(Validation).is_retryable());
        assert!(!error(Other).is_retryable());
    }

    #[test]
    fn message_names_the_call_and_resource() {
        let error = Error::new(
            Validation,
            "CloudFormation",
            "CreateStack",
            "pr-4",
            "ValidationError",
            "bad",
        );
        assert_eq!(
            error.to_string(),
            "CloudFormation CreateStack pr-4: ValidationError: bad"
        );
        let error = Error::new(
            Other,
            "CloudWatch",
            "DescribeAlarms",
            "",
            "dispatch",
            "down",
        );
        assert_eq!(
            error.to_string(),
            "CloudWatch DescribeAlarms: dispatch: down"
        );
    }
}

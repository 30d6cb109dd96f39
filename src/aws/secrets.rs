//! Secrets Manager: the values pullstack itself must send, read when they
//! are needed and held only as [`SecretString`], which never prints.

use super::error::{Error, ErrorKind, Result};
use secrecy::SecretString;

#[derive(Clone)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
}

impl Secrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Secrets {
        Secrets { client }
    }

    /// The current value (`AWSCURRENT`) of the secret `arn`, which must be
    /// a string (a binary secret is a validation error).
    pub async fn value(&self, arn: &str) -> Result<SecretString> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| Error::from_sdk("SecretsManager", "GetSecretValue", arn, &e))?;
        match out.secret_string {
            Some(value) => Ok(SecretString::from(value)),
            None => Err(Error::new(
                ErrorKind::Validation,
                "SecretsManager",
                "GetSecretValue",
                arn,
                "NotAString",
                "the secret holds binary data, not a string",
            )),
        }
    }
}

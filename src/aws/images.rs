//! ECR: whether a commit's image has been pushed yet.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::ImageIdentifier;

#[derive(Debug, thiserror::Error)]
#[error("ECR DescribeImages {repository}:{tag}: {code}: {message}")]
pub struct ImageError {
    repository: String,
    tag: String,
    code: String,
    message: String,
}

#[derive(Clone)]
pub struct Images {
    client: Client,
}

impl Images {
    pub fn new(client: Client) -> Images {
        Images { client }
    }

    /// Whether `repository` holds an image tagged `tag`.
    pub async fn exists(&self, repository: &str, tag: &str) -> Result<bool, ImageError> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(out) => Ok(!out.image_details().is_empty()),
            Err(err) if err.code() == Some("ImageNotFoundException") => Ok(false),
            Err(err) => Err(ImageError {
                repository: repository.to_owned(),
                tag: tag.to_owned(),
                code: err.code().unwrap_or("Unknown").to_owned(),
                message: err.message().map_or_else(|| err.to_string(), str::to_owned),
            }),
        }
    }
}

//! ECR: whether a commit's image has been pushed yet.

use super::error::{Error, Result};
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;

#[derive(Clone)]
pub struct Images {
    client: Client,
}

impl Images {
    pub fn new(client: Client) -> Images {
        Images { client }
    }

    /// Whether `repository` holds an image tagged `tag`.
    pub async fn exists(&self, repository: &str, tag: &str) -> Result<bool> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(out) => Ok(!out.image_details().is_empty()),
            Err(err) => {
                let err =
                    Error::from_sdk("ECR", "DescribeImages", format!("{repository}:{tag}"), &err);
                // Only the image: a missing repository is a setup error to
                // report, not an image still to be pushed.
                if err.code == "ImageNotFoundException" {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}

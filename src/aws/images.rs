//! ECR: whether a commit's image has been pushed yet, and which image
//! (by digest) its tag names.

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

    /// The digest (`sha256:…`) of the image tagged `tag` in `repository`,
    /// or `None` while no image has that tag.
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .image_details()
                .iter()
                .find_map(|image| image.image_digest())
                .map(str::to_owned)),
            Err(err) => {
                let err =
                    Error::from_sdk("ECR", "DescribeImages", format!("{repository}:{tag}"), &err);
                // Only the image: a missing repository is a setup error to
                // report, not an image still to be pushed.
                if err.code == "ImageNotFoundException" {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }
}

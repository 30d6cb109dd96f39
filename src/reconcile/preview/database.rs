//! A preview's own database (`preview.database`): an Aurora copy-on-write
//! clone made through the RDS API before the service is deployed, stopped
//! while the environment sleeps, started when it wakes and deleted with
//! it. Like a stack, it is looked at again on the pass's timers while RDS
//! works: no pass waits for it.

use super::{Pass, Scale};
use crate::aws::databases::{CloneRequest, Cluster};
use crate::aws::stacks::tag;
use crate::config::DatabaseConfig;
use crate::domain::comment::State;
use crate::domain::database::clone_identifier;
use crate::reconcile::{Action, Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// The clone's tag holding the source cluster's master-user secret: a
/// clone shares its source's credentials, and RDS does not copy the
/// secret's reference onto it.
pub const SOURCE_SECRET_TAG: &str = "pullstack:source-secret-arn";

impl Pass<'_> {
    /// The name of this environment's clone.
    fn clone_id(&self) -> String {
        clone_identifier(&self.ctx.config.app, &self.env.key)
    }

    /// The variables that connect the container to its clone, once the
    /// clone is there (for a deploy at full scale: created, and started
    /// if it was stopped); otherwise the action to look again with,
    /// having created it. None without `preview.database`.
    pub(super) async fn database_env(
        &mut self,
        sha: &str,
        scale: Scale,
    ) -> Result<std::result::Result<BTreeMap<String, String>, Action>> {
        let Some(config) = self.ctx.config.preview.database.clone() else {
            return Ok(Ok(BTreeMap::new()));
        };
        let databases = &self.ctx.aws.databases;
        let id = self.clone_id();
        let Some(cluster) = databases.describe(&id).await? else {
            if scale == Scale::Zero {
                // Not made for an environment going to sleep: it is when
                // the environment wakes.
                return Ok(Ok(BTreeMap::new()));
            }
            self.create_clone(&config, &id).await?;
            return self.database_wait(sha, "creating the database").await;
        };
        let waiting = match cluster.status.as_str() {
            "deleting" => "waiting for the previous database to be deleted",
            "available" if cluster.members.is_empty() => {
                // Made before a crash kept its instance from being added.
                let tags = self.database_tags();
                (databases.create_instance(&cluster, &config.instance_class, &tags)).await?;
                "creating the database"
            }
            "available" => match databases.instance_status(&id).await?.as_deref() {
                Some("available") => return Ok(Ok(connection(&config, &cluster))),
                _ if scale == Scale::Zero => return Ok(Ok(connection(&config, &cluster))),
                _ => "creating the database",
            },
            "creating" if scale == Scale::Up => "creating the database",
            "stopped" if scale == Scale::Up => {
                // Woken: started before the service scales up. The deploy
                // goes on meanwhile; the app waits for it as for a restart.
                tracing::info!(cluster = id, "starting the database");
                databases.start(&id).await?;
                return Ok(Ok(connection(&config, &cluster)));
            }
            // Starting, stopping, or busy: it is there, at this address.
            _ => return Ok(Ok(connection(&config, &cluster))),
        };
        self.database_wait(sha, waiting).await
    }

    async fn create_clone(&mut self, config: &DatabaseConfig, id: &str) -> Result<()> {
        let ctx = self.ctx;
        let shared = ctx.shared().await?;
        let Some((subnet_group, security_group)) = shared.database.clone() else {
            return Err(Error::user(format!(
                "The shared stack {} has no DB subnet group for preview databases: run \
                 `pullstack bootstrap` again, then push or `/pullstack redeploy`.",
                shared.stack_name
            )));
        };
        let databases = &ctx.aws.databases;
        let Some(source) = databases.describe(&config.clone_from).await? else {
            return Err(Error::user(format!(
                "`preview.database.clone_from` names `{}`, which is no DB cluster in this \
                 account and region. Fix the config, then push or `/pullstack redeploy`.",
                config.clone_from
            )));
        };
        let mut tags = self.database_tags();
        if let Some(secret) = &source.secret_arn {
            tags.insert(SOURCE_SECRET_TAG.to_owned(), secret.clone());
        }
        let request = CloneRequest {
            id,
            source: &source.id,
            subnet_group: &subnet_group,
            security_group: &security_group,
            capacity: config
                .serverless()
                .then_some((config.min_acu, config.max_acu)),
            tags: &tags,
        };
        tracing::info!(cluster = id, source = source.id, "cloning the database");
        let cluster = databases.restore_clone(&request).await?;
        databases
            .create_instance(&cluster, &config.instance_class, &tags)
            .await?;
        Ok(())
    }

    /// The clone's tags: the stacks' own marks of ownership.
    fn database_tags(&self) -> BTreeMap<String, String> {
        let config = &self.ctx.config;
        let mut tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), config.repository.clone()),
            (tag::APP.to_owned(), config.app.clone()),
            (tag::ENV.to_owned(), self.env.key.tag_value()),
            (tag::ROLE.to_owned(), "preview".to_owned()),
        ]);
        if let crate::domain::naming::EnvKey::Pr(number) = self.env.key {
            tags.insert(tag::PR.to_owned(), number.to_string());
        }
        tags
    }

    /// Says what the database is doing and looks again soon.
    async fn database_wait(
        &mut self,
        sha: &str,
        status: &str,
    ) -> Result<std::result::Result<BTreeMap<String, String>, Action>> {
        let state = State::Deploying {
            status: status.to_owned(),
            since: None,
            trouble: None,
        };
        self.report(Some(sha), state).await?;
        let delay = self.ctx.poll_delay(Duration::ZERO);
        Ok(Err(Action::after(delay)))
    }

    /// The environment is awake: a clone left stopped (woken while it was
    /// still stopping) is started.
    pub(super) async fn wake_database(&self) -> Result<()> {
        if self.ctx.config.preview.database.is_none() {
            return Ok(());
        }
        let databases = &self.ctx.aws.databases;
        let id = self.clone_id();
        if let Some(cluster) = databases.describe(&id).await?
            && cluster.status == "stopped"
        {
            tracing::info!(cluster = id, "awake: starting the database");
            databases.start(&id).await?;
        }
        Ok(())
    }

    /// The environment sleeps: its clone is stopped (RDS then bills only
    /// its storage). A clone busy with something else is stopped by a later
    /// look.
    pub(super) async fn sleep_database(&self) -> Result<()> {
        if self.ctx.config.preview.database.is_none() {
            return Ok(());
        }
        let databases = &self.ctx.aws.databases;
        let id = self.clone_id();
        if let Some(cluster) = databases.describe(&id).await?
            && cluster.status == "available"
        {
            tracing::info!(cluster = id, "idle: stopping the database");
            databases.stop(&id).await?;
        }
        Ok(())
    }

    /// Deletes the environment's clone, with no final snapshot. Returns the
    /// action to look again with while it is going, or `None` once it is
    /// gone. A refused delete is an error, so the pass is retried: a clone
    /// is never left behind.
    pub(super) async fn drop_database(&self) -> Result<Option<Action>> {
        if self.ctx.config.preview.database.is_none() {
            return Ok(None);
        }
        let databases = &self.ctx.aws.databases;
        let id = self.clone_id();
        let Some(cluster) = databases.describe(&id).await? else {
            return Ok(None);
        };
        if cluster.status == "deleting" {
            return Ok(Some(Action::after(self.ctx.poll_delay(Duration::ZERO))));
        }
        tracing::info!(cluster = id, "deleting the database");
        databases.delete(&cluster).await?;
        // Looked at again at once: a clone already gone is seen with no wait.
        Ok(Some(Action::after(Duration::ZERO)))
    }
}

/// What the container is told of its clone. The credentials stay in
/// Secrets Manager: only the secret's ARN is passed.
fn connection(config: &DatabaseConfig, cluster: &Cluster) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let Some(host) = &cluster.endpoint {
        env.insert("DATABASE_HOST".to_owned(), host.clone());
    }
    if let Some(port) = cluster.port {
        env.insert("DATABASE_PORT".to_owned(), port.to_string());
    }
    if let Some(name) = config.name.clone().or(cluster.database_name.clone()) {
        env.insert("DATABASE_NAME".to_owned(), name);
    }
    let secret = (cluster.secret_arn.as_deref()).or(cluster.tag(SOURCE_SECRET_TAG));
    if let Some(secret) = secret {
        env.insert("DATABASE_SECRET_ARN".to_owned(), secret.to_owned());
    }
    env
}

//! RDS: the Aurora copy-on-write clones that give previews a database of
//! their own. Managed through the RDS API (not the stack) and tagged like
//! the stacks, so the resync finds them.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, ServerlessV2ScalingConfiguration, Tag};
use std::collections::BTreeMap;

/// A DB cluster as pullstack sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub id: String,
    /// RDS's status: `creating`, `available`, `stopped`, `starting`…
    pub status: String,
    pub endpoint: Option<String>,
    pub port: Option<i32>,
    pub database_name: Option<String>,
    pub engine: String,
    /// The Secrets Manager secret holding the master credentials, when RDS
    /// manages them.
    pub secret_arn: Option<String>,
    /// Its instances' identifiers.
    pub members: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl Cluster {
    fn of(cluster: &DbCluster) -> Cluster {
        Cluster {
            id: cluster
                .db_cluster_identifier()
                .unwrap_or_default()
                .to_owned(),
            status: cluster.status().unwrap_or_default().to_owned(),
            endpoint: cluster.endpoint().map(str::to_owned),
            port: cluster.port(),
            database_name: cluster.database_name().map(str::to_owned),
            engine: cluster.engine().unwrap_or_default().to_owned(),
            secret_arn: cluster
                .master_user_secret()
                .and_then(|s| s.secret_arn())
                .map(str::to_owned),
            members: cluster
                .db_cluster_members()
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(str::to_owned))
                .collect(),
            tags: cluster
                .tag_list()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// What a clone is made from and where it goes.
#[derive(Clone, Debug)]
pub struct CloneRequest<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub subnet_group: &'a str,
    pub security_group: &'a str,
    /// Serverless v2 capacity (min, max) in ACUs, for a `db.serverless` instance.
    pub capacity: Option<(f64, f64)>,
    pub tags: &'a BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct Databases {
    client: Client,
}

impl Databases {
    pub fn new(client: Client) -> Databases {
        Databases { client }
    }

    /// The cluster `id`, or `None` when there is none.
    pub async fn describe(&self, id: &str) -> Result<Option<Cluster>> {
        let out = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "DescribeDBClusters", id, &err));
        match out {
            Ok(out) => Ok(out.db_clusters().first().map(Cluster::of)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every cluster tagged `key` = `value`.
    pub async fn list_tagged(&self, key: &str, value: &str) -> Result<Vec<Cluster>> {
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|err| Error::from_sdk("RDS", "DescribeDBClusters", "", &err))?;
            found.extend(
                page.db_clusters()
                    .iter()
                    .map(Cluster::of)
                    .filter(|c| c.tag(key) == Some(value)),
            );
        }
        Ok(found)
    }

    /// Starts a copy-on-write clone of the source at its latest restorable
    /// time. Storage is shared until either side writes.
    pub async fn restore_clone(&self, request: &CloneRequest<'_>) -> Result<Cluster> {
        let mut call = self
            .client
            .restore_db_cluster_to_point_in_time()
            .db_cluster_identifier(request.id)
            .source_db_cluster_identifier(request.source)
            .restore_type("copy-on-write")
            .use_latest_restorable_time(true)
            .db_subnet_group_name(request.subnet_group)
            .vpc_security_group_ids(request.security_group)
            .set_tags(Some(tags(request.tags)));
        if let Some((min, max)) = request.capacity {
            call = call.serverless_v2_scaling_configuration(
                ServerlessV2ScalingConfiguration::builder()
                    .min_capacity(min)
                    .max_capacity(max)
                    .build(),
            );
        }
        let out = call.send().await.map_err(|err| {
            Error::from_sdk("RDS", "RestoreDBClusterToPointInTime", request.id, &err)
        })?;
        let cluster = out.db_cluster().map(Cluster::of);
        cluster.ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                "RDS",
                "RestoreDBClusterToPointInTime",
                request.id,
                "NoCluster",
                "the answer named no cluster",
            )
        })
    }

    /// Adds the cluster's one instance, named like the cluster.
    pub async fn create_instance(
        &self,
        cluster: &Cluster,
        class: &str,
        tags_: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.client
            .create_db_instance()
            .db_instance_identifier(&cluster.id)
            .db_cluster_identifier(&cluster.id)
            .db_instance_class(class)
            .engine(&cluster.engine)
            // Its subnets have a route to the internet: only the VPC may
            // reach it.
            .publicly_accessible(false)
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "CreateDBInstance", &cluster.id, &err))?;
        Ok(())
    }

    /// The status of instance `id` (`creating`, `available`…), or `None`
    /// when there is none.
    pub async fn instance_status(&self, id: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "DescribeDBInstances", id, &err));
        match out {
            Ok(out) => Ok(out
                .db_instances()
                .first()
                .map(|i| i.db_instance_status().unwrap_or_default().to_owned())),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn stop(&self, id: &str) -> Result<()> {
        self.client
            .stop_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "StopDBCluster", id, &err))?;
        Ok(())
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.client
            .start_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "StartDBCluster", id, &err))?;
        Ok(())
    }

    /// Deletes the cluster's instances, then the cluster, with no final
    /// snapshot. Already gone is done.
    pub async fn delete(&self, cluster: &Cluster) -> Result<()> {
        for instance in &cluster.members {
            let deleted = self
                .client
                .delete_db_instance()
                .db_instance_identifier(instance)
                .skip_final_snapshot(true)
                .send()
                .await
                .map_err(|err| Error::from_sdk("RDS", "DeleteDBInstance", instance, &err));
            match deleted {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        let deleted = self
            .client
            .delete_db_cluster()
            .db_cluster_identifier(&cluster.id)
            .skip_final_snapshot(true)
            .send()
            .await
            .map_err(|err| Error::from_sdk("RDS", "DeleteDBCluster", &cluster.id, &err));
        match deleted {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

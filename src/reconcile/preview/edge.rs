//! A preview on the shared edge: claiming a shard and a rule priority for
//! the CreateStack or UpdateStack that puts it there, retried at another
//! priority when another process took it first, and waiting (said on the
//! PR) while a new shard is added.

use super::Pass;
use crate::aws::stacks::Started;
use crate::domain::comment::State;
use crate::domain::edge;
use crate::github::client::StatusState;
use crate::reconcile::edge::Placed;
use crate::reconcile::spec::{self, Spec};
use crate::reconcile::{Action, Result};

/// Placements tried before the pass gives up and is retried.
const PLACEMENT_ATTEMPTS: usize = 5;

/// How often a preview waiting for load balancer quota looks again.
const NO_ROOM_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// What the PR's comment says while a shard is added.
pub(super) const ADDING_SHARD: &str = "adding a load balancer for previews, as the others are \
     full; this one preview waits a few minutes for it";

/// The stack call that claims a placement.
#[derive(Clone, Copy)]
pub(super) enum Call {
    Create,
    Update,
}

/// What claiming a placement came to.
pub(super) enum Claimed {
    Started(Started),
    /// Waiting for a new shard: the pass ends with this.
    Waiting(Action),
}

impl Pass<'_> {
    /// Places the stack on the edge and makes `call` with the placement,
    /// under the edge's lock.
    pub(super) async fn claim_edge(
        &mut self,
        sha: &str,
        sent: &mut Spec,
        call: Call,
    ) -> Result<Claimed> {
        let ctx = self.ctx;
        let name = self.env.stack_name.clone();
        let mut avoid = Vec::new();
        for _ in 0..PLACEMENT_ATTEMPTS {
            let since = self.env.since.unwrap_or_else(|| ctx.clock.now());
            match ctx.edge.place(ctx, &self.env.key, since, &avoid).await? {
                Placed::NoRoom { position, reason } => {
                    let state = State::Queued {
                        position,
                        limit: reason,
                    };
                    self.report(Some(sha), state).await?;
                    let why = "queued: load balancer quota reached";
                    self.status(sha, StatusState::Pending, None, why).await?;
                    // A closed preview wakes the line; room made outside
                    // (a raised quota, a load balancer deleted) is seen here.
                    return Ok(Claimed::Waiting(Action::after(NO_ROOM_RECHECK)));
                }
                Placed::Waiting { elapsed } => {
                    let state = State::Deploying {
                        status: ADDING_SHARD.into(),
                        since: None,
                        trouble: None,
                    };
                    self.report(Some(sha), state).await?;
                    return Ok(Claimed::Waiting(Action::after(ctx.poll_delay(elapsed))));
                }
                Placed::At(placement, mut claim) => {
                    sent.place(&placement)?;
                    self.listener = Some(placement.listener.clone());
                    let deploy = sent.deploy(&name);
                    let result = match call {
                        Call::Create => ctx
                            .aws
                            .stacks
                            .create(&deploy)
                            .await
                            .map(|()| Started::Operation),
                        Call::Update => ctx.aws.stacks.update(&deploy).await,
                    };
                    if result.is_err() {
                        claim.failed();
                    }
                    match result {
                        Err(err) if edge::priority_conflict(&err.code) => {
                            tracing::info!(
                                stack = name,
                                priority = placement.priority,
                                "rule priority taken meanwhile; placing again"
                            );
                            for priority in placement.priorities() {
                                avoid.push((placement.listener.clone(), priority));
                            }
                        }
                        other => return Ok(Claimed::Started(other.map_err(spec::refused)?)),
                    }
                }
            }
        }
        Err(
            anyhow::anyhow!("no free rule priority for {name} after {PLACEMENT_ATTEMPTS} attempts")
                .into(),
        )
    }

    /// Updates the stack as `sent` says.
    pub(super) async fn update(&self, sent: &Spec) -> Result<Started> {
        let deploy = sent.deploy(&self.env.stack_name);
        self.ctx
            .aws
            .stacks
            .update(&deploy)
            .await
            .map_err(spec::refused)
    }

    /// Moves a stack with its own load balancer onto the edge; `Err` is the
    /// pass's end while a shard is added.
    pub(super) async fn update_onto_edge(
        &mut self,
        sha: &str,
        sent: &mut Spec,
    ) -> Result<std::result::Result<Started, Action>> {
        Ok(match self.claim_edge(sha, sent, Call::Update).await? {
            Claimed::Started(started) => Ok(started),
            Claimed::Waiting(action) => Err(action),
        })
    }
}

//! The periodic resync: lists open PRs and the stacks pullstack owns, and
//! wakes every environment whose listing differs from what this process
//! last reported, plus production. It heals lost webhooks and crashes.

use super::preview::idle;
use super::{Action, Ctx, Job, Mode, Result};
use crate::aws::stacks::{Phase, Stack, tag};
use crate::config::EdgeMode;
use crate::domain::comment::State;
use crate::domain::idle::Verdict;
use crate::domain::naming::{EnvKey, Tagged};
use crate::github::client::PullRequest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

pub async fn pass(ctx: &Ctx) -> Result<Action> {
    let prs = if ctx.config.preview.enabled {
        ctx.forge.open_pull_requests().await?
    } else {
        Vec::new()
    };
    let mut stacks = HashMap::new();
    let mut slugs = Vec::new();
    for stack in ctx
        .aws
        .stacks
        .list_tagged(tag::REPO, &ctx.config.repository)
        .await?
    {
        if stack.tag(tag::MANAGED) != Some("true") {
            continue;
        }
        match stack.tag(tag::ENV).and_then(EnvKey::from_tag_value) {
            Some(Tagged::Key(key)) => {
                stacks.insert(key, stack);
            }
            Some(Tagged::BranchSlug(slug)) => slugs.push((slug, stack.name)),
            None => {}
        }
    }
    let mut keys = BTreeSet::new();
    let mut unchanged = 0;
    for pr in &prs {
        let key = EnvKey::Pr(pr.number);
        if is_unchanged(ctx, &key, pr, stacks.get(&key)) {
            unchanged += 1;
        } else {
            keys.insert(key);
        }
    }
    let open: BTreeSet<EnvKey> = prs.iter().map(|pr| EnvKey::Pr(pr.number)).collect();
    keys.extend(stacks.into_keys().filter(|key| !open.contains(key)));
    // A clone whose environment is gone (a PR closed while pullstack was
    // down, a teardown cut short) gets a pass, which deletes it.
    if ctx.config.preview.database.is_some() {
        keys.extend(
            orphaned_clones(ctx)
                .await?
                .filter(|key| !open.contains(key)),
        );
    }
    if !ctx.deleted_looked.load(Ordering::SeqCst) {
        keys.extend(deleted(ctx).await?.filter(|key| !open.contains(key)));
        ctx.deleted_looked.store(true, Ordering::SeqCst);
    }
    if !slugs.is_empty() {
        keys.extend(branches_by_slug(ctx, slugs).await?);
    }
    if ctx.config.edge_mode() == EdgeMode::Shared {
        ctx.edge.prune(ctx).await?;
    }
    tracing::info!(environments = keys.len() + unchanged, unchanged, "resync");
    metrics::counter!("pullstack_resyncs_total").increment(1);
    let mut jobs: Vec<Job> = keys.into_iter().map(Job::Env).collect();
    if ctx.config.production.enabled {
        jobs.push(Job::Production);
    }
    let action = match ctx.mode {
        Mode::Serve => Action::after(ctx.config.resync.interval),
        Mode::OneShot => Action::done(),
    };
    Ok(action.waking(jobs))
}

/// The environments of the previews' database clones this app owns.
async fn orphaned_clones(ctx: &Ctx) -> Result<impl Iterator<Item = EnvKey>> {
    let clones = (ctx.aws.databases)
        .list_tagged(tag::REPO, &ctx.config.repository)
        .await?;
    Ok(clones.into_iter().filter_map(|clone| {
        if clone.tag(tag::MANAGED) != Some("true")
            || clone.tag(tag::APP) != Some(ctx.config.app.as_str())
        {
            return None;
        }
        match clone.tag(tag::ENV).and_then(EnvKey::from_tag_value) {
            Some(Tagged::Key(key)) => Some(key),
            _ => None,
        }
    }))
}

/// Whether the listings show a PR's environment exactly as this process
/// last reported it, with no idle step due: then the resync need not look
/// closer. Webhooks still trigger a full pass; after a restart nothing is
/// known, so every environment gets one.
fn is_unchanged(ctx: &Ctx, key: &EnvKey, pr: &PullRequest, stack: Option<&Stack>) -> bool {
    let Some(stack) = stack else {
        return false;
    };
    if stack.phase() != Phase::Stable || stack.tag(tag::COMMIT) != Some(pr.head.sha.as_str()) {
        return false;
    }
    let Some((memory, shown)) = ctx.sticky.peek(&key.slug()) else {
        return false;
    };
    let asleep = stack.tag(tag::IDLE_SINCE).is_some();
    let verdict = idle::verdict(ctx, stack, pr.updated_at, idle::kept(ctx, pr));
    match (verdict, shown) {
        (Verdict::Awake, _) => !asleep && memory.ready.as_deref() == Some(pr.head.sha.as_str()),
        (
            Verdict::Asleep { deletes_at },
            Some(State::Asleep {
                deletes_at: shown, ..
            }),
        ) => deletes_at == shown,
        _ => false,
    }
}

/// PR environments whose stacks were deleted lately. Once, after a start:
/// a stop between DELETE_COMPLETE and the final comment, or a PR closed
/// while pullstack was down, would otherwise leave the PR saying "Ready"
/// with its Deployment live for good. Within a process, the pass that
/// polls the delete says it.
async fn deleted(ctx: &Ctx) -> Result<impl Iterator<Item = EnvKey>> {
    let within = chrono::Duration::from_std(ctx.config.resync.deleted_within)
        .unwrap_or(chrono::Duration::MAX);
    let since = ctx
        .clock
        .now()
        .checked_sub_signed(within)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let app = ctx.config.app.clone();
    let names = ctx.aws.stacks.deleted_since(since).await?;
    Ok(names
        .into_iter()
        .filter_map(move |name| EnvKey::pr_of_stack(&app, &name))
        .map(EnvKey::Pr))
}

/// The branches of stacks tagged by slug (their names could not be tag
/// values). A stack whose branch is gone is deleted here, since no branch
/// name is left to queue it under.
async fn branches_by_slug(ctx: &Ctx, slugs: Vec<(String, String)>) -> Result<Vec<EnvKey>> {
    let branches: BTreeMap<String, String> = ctx
        .forge
        .branches()
        .await?
        .into_iter()
        .map(|name| (EnvKey::Branch(name.clone()).slug(), name))
        .collect();
    let mut keys = Vec::new();
    for (slug, stack) in slugs {
        match branches.get(&slug) {
            Some(name) => keys.push(EnvKey::Branch(name.clone())),
            None => {
                tracing::info!(stack, "its branch is gone: deleting");
                ctx.aws.stacks.delete(&stack).await?;
            }
        }
    }
    Ok(keys)
}

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// An image pushed `hours` ago, never pulled.
fn image(n: u8, tags: &[&str], hours: i64) -> Image {
    Image {
        digest: digest(n),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        pushed_at: Some(now() - chrono::Duration::hours(hours)),
        last_pull: None,
        part_of: Vec::new(),
    }
}

fn uses(by: &str, reference: &str) -> Use {
    Use {
        by: by.to_owned(),
        image: ImageRef::parse(reference).unwrap(),
    }
}

fn decide(images: &[Image], uses: &[Use]) -> BTreeMap<String, (Verdict, String)> {
    plan("demo", images, uses, now(), DAY)
        .into_iter()
        .map(|d| (d.digest, (d.verdict, d.reason.to_string())))
        .collect()
}

#[test]
fn referenced_images_are_kept_by_tag_or_digest_and_say_by_whom() {
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let images = [
        image(1, &["aaa"], 24 * 30),
        image(2, &[], 24 * 30),
        image(3, &["ccc", "v3"], 24 * 30),
    ];
    let uses = [
        uses("stack demo-pr-1", &format!("{host}/demo:aaa")),
        uses(
            "task definition web:4",
            &format!("{host}/demo@{}", digest(2)),
        ),
        uses("stack demo-prod-ccc", &format!("{host}/demo:v3")),
        uses("task definition web:5", &format!("{host}/demo:v3")),
    ];
    let decisions = decide(&images, &uses);
    assert_eq!(
        decisions[&digest(1)],
        (Verdict::Keep, "in use by stack demo-pr-1".into())
    );
    assert_eq!(
        decisions[&digest(2)],
        (Verdict::Keep, "in use by task definition web:4".into())
    );
    assert_eq!(
        decisions[&digest(3)],
        (
            Verdict::Keep,
            "in use by stack demo-prod-ccc, task definition web:5".into()
        )
    );
}

#[test]
fn old_unreferenced_images_go_and_say_how_old() {
    let decisions = decide(&[image(1, &["old"], 72), image(2, &[], 72)], &[]);
    for n in [1, 2] {
        assert_eq!(
            decisions[&digest(n)],
            (
                Verdict::Delete,
                "unreferenced; pushed 3d ago, never pulled (window 24h)".into()
            )
        );
    }
}

#[test]
fn images_younger_than_the_window_are_kept_even_untagged() {
    let decisions = decide(&[image(1, &["new"], 23), image(2, &[], 1)], &[]);
    assert_eq!(
        decisions[&digest(1)],
        (
            Verdict::Keep,
            "pushed 23h ago, inside the 24h window".into()
        )
    );
    assert_eq!(decisions[&digest(2)].0, Verdict::Keep);
}

#[test]
fn a_recent_pull_keeps_an_old_image() {
    let mut pulled = image(1, &["old"], 24 * 10);
    pulled.last_pull = Some(now() - chrono::Duration::hours(2));
    let mut stale = image(2, &["older"], 24 * 10);
    stale.last_pull = Some(now() - chrono::Duration::hours(48));
    let decisions = decide(&[pulled, stale], &[]);
    assert_eq!(
        decisions[&digest(1)],
        (Verdict::Keep, "pulled 2h ago, inside the 24h window".into())
    );
    assert_eq!(
        decisions[&digest(2)],
        (
            Verdict::Delete,
            "unreferenced; pushed 10d ago, last pulled 2d ago (window 24h)".into()
        )
    );
}

#[test]
fn the_window_edge_and_clock_skew() {
    // Exactly the window old: idle for the whole window, so it goes.
    let edge = image(1, &[], 24);
    // Pushed "in the future" by a skewed clock: as new as can be.
    let mut future = image(2, &[], 0);
    future.pushed_at = Some(now() + chrono::Duration::hours(5));
    let mut unknown = image(3, &[], 0);
    unknown.pushed_at = None;
    let decisions = decide(&[edge, future, unknown], &[]);
    assert_eq!(decisions[&digest(1)].0, Verdict::Delete);
    assert_eq!(decisions[&digest(2)].0, Verdict::Keep);
    assert_eq!(
        decisions[&digest(3)],
        (Verdict::Keep, "push time unknown".into())
    );
}

#[test]
fn references_to_other_repositories_protect_nothing_here() {
    let decisions = decide(
        &[image(1, &["aaa"], 72)],
        &[
            uses(
                "stack other-pr-1",
                "123.dkr.ecr.eu-west-1.amazonaws.com/other:aaa",
            ),
            uses("task definition x:1", "demo-extra:aaa"),
        ],
    );
    assert_eq!(decisions[&digest(1)].0, Verdict::Delete);
}

#[test]
fn a_tag_that_moved_no_longer_protects_the_old_image() {
    let decisions = decide(
        &[image(1, &[], 72), image(2, &["latest"], 72)],
        &[uses("task definition web:1", "demo")],
    );
    assert_eq!(decisions[&digest(1)].0, Verdict::Delete);
    assert_eq!(
        decisions[&digest(2)],
        (Verdict::Keep, "in use by task definition web:1".into())
    );
}

#[test]
fn platform_manifests_and_signatures_follow_their_image() {
    let index = image(1, &["multi"], 72);
    let mut amd64 = image(2, &[], 72);
    amd64.part_of = vec![digest(1)];
    let mut signature = image(3, &["sha256-0101.sig"], 72);
    signature.part_of = vec![digest(1)];
    // A platform manifest of a platform manifest (nested indexes).
    let mut nested = image(4, &[], 72);
    nested.part_of = vec![digest(2)];
    // Part of an index that goes: goes too.
    let old_index = image(5, &[], 72);
    let mut orphan = image(6, &[], 72);
    orphan.part_of = vec![digest(5)];
    let decisions = decide(
        &[nested, signature, amd64, index, old_index, orphan],
        &[uses("stack demo-pr-1", "demo:multi")],
    );
    let part_of = format!("part of {}, which is kept", short(&digest(1)));
    assert_eq!(decisions[&digest(2)], (Verdict::Keep, part_of.clone()));
    assert_eq!(decisions[&digest(3)], (Verdict::Keep, part_of));
    assert_eq!(
        decisions[&digest(4)],
        (
            Verdict::Keep,
            format!("part of {}, which is kept", short(&digest(2)))
        )
    );
    assert_eq!(decisions[&digest(5)].0, Verdict::Delete);
    assert_eq!(decisions[&digest(6)].0, Verdict::Delete);
}

#[test]
fn decisions_are_oldest_first() {
    let order: Vec<String> = plan(
        "demo",
        &[image(1, &[], 5), image(2, &[], 50), image(3, &[], 20)],
        &[],
        now(),
        DAY,
    )
    .into_iter()
    .map(|d| d.digest)
    .collect();
    assert_eq!(order, [digest(2), digest(3), digest(1)]);
}

#[test]
fn ages_read_coarsely() {
    assert_eq!(ago(Duration::from_secs(1)), "1s");
    assert_eq!(ago(Duration::from_secs(90)), "1m");
    assert_eq!(ago(Duration::from_secs(600)), "10m");
    assert_eq!(ago(Duration::from_secs(3600)), "1h");
    assert_eq!(ago(Duration::from_secs(36 * 3600)), "36h");
    assert_eq!(ago(Duration::from_secs(5 * 3600 + 59)), "5h");
    assert_eq!(ago(Duration::from_secs(3 * 86_400 + 7200)), "3d");
    assert_eq!(short(&digest(171)), "sha256:abababababab");
    assert_eq!(short("weird"), "weird");
}

prop_compose! {
    fn arb_image(n: u8)(
        tags in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d", "e"]), 0..3),
        pushed_hours in prop::option::weighted(0.9, -5i64..200),
        pulled_hours in prop::option::of(-5i64..200),
        part_of in prop::collection::vec(0u8..12, 0..2),
    ) -> Image {
        Image {
            digest: digest(n),
            tags: tags.into_iter().map(str::to_owned).collect(),
            pushed_at: pushed_hours.map(|h| now() - chrono::Duration::hours(h)),
            last_pull: pulled_hours.map(|h| now() - chrono::Duration::hours(h)),
            part_of: part_of.into_iter().filter(|p| *p != n).map(digest).collect(),
        }
    }
}

fn arb_images() -> impl Strategy<Value = Vec<Image>> {
    (0u8..12)
        .prop_flat_map(|count| (0..count).map(arb_image).collect::<Vec<_>>())
        .prop_map(|mut images| {
            // One tag names one image in a repository.
            let mut seen = BTreeSet::new();
            for image in &mut images {
                image.tags.retain(|t| seen.insert(t.clone()));
            }
            images
        })
}

fn arb_uses() -> impl Strategy<Value = Vec<Use>> {
    let reference = prop_oneof![
        prop::sample::select(vec!["a", "b", "c", "d", "e", "zz"]).prop_map(|t| format!("demo:{t}")),
        (0u8..14).prop_map(|n| format!("demo@{}", digest(n))),
        prop::sample::select(vec!["a", "b"]).prop_map(|t| format!("other:{t}")),
    ];
    prop::collection::vec(
        (0u8..5, reference).prop_map(|(by, r)| uses(&format!("stack s{by}"), &r)),
        0..6,
    )
}

fn referenced(image: &Image, uses: &[Use]) -> bool {
    uses.iter().any(|u| {
        u.image.repository == "demo"
            && (u.image.digest.as_deref() == Some(image.digest.as_str())
                || u.image.tag.as_ref().is_some_and(|t| image.tags.contains(t)))
    })
}

fn deleted(images: &[Image], uses: &[Use], window: Duration) -> BTreeSet<String> {
    plan("demo", images, uses, now(), window)
        .into_iter()
        .filter(|d| d.verdict == Verdict::Delete)
        .map(|d| d.digest)
        .collect()
}

proptest! {
    #[test]
    fn never_deletes_anything_referenced_or_young(
        images in arb_images(),
        uses in arb_uses(),
        window_hours in 1u64..100,
    ) {
        let window = Duration::from_secs(window_hours * 3600);
        let decisions = plan("demo", &images, &uses, now(), window);
        // One decision per image.
        let mut digests: Vec<&str> = decisions.iter().map(|d| d.digest.as_str()).collect();
        digests.sort_unstable();
        let mut want: Vec<&str> = images.iter().map(|i| i.digest.as_str()).collect();
        want.sort_unstable();
        prop_assert_eq!(digests, want);
        let kept: BTreeSet<&str> = decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Keep)
            .map(|d| d.digest.as_str())
            .collect();
        for image in &images {
            let deleted = !kept.contains(image.digest.as_str());
            if !deleted {
                continue;
            }
            prop_assert!(!referenced(image, &uses), "deleted a referenced image");
            let pushed = image.pushed_at.expect("deleted an image of unknown age");
            let last = image.last_pull.map_or(pushed, |p| p.max(pushed));
            prop_assert!(now() - last >= chrono::Duration::from_std(window).unwrap());
            prop_assert!(
                !image.part_of.iter().any(|p| kept.contains(p.as_str())),
                "deleted part of a kept image"
            );
        }
    }

    #[test]
    fn more_uses_or_a_longer_window_never_delete_more(
        images in arb_images(),
        uses in arb_uses(),
        extra in arb_uses(),
        window_hours in 1u64..100,
        longer in 0u64..100,
    ) {
        let window = Duration::from_secs(window_hours * 3600);
        let base = deleted(&images, &uses, window);
        let all: Vec<Use> = uses.iter().chain(&extra).cloned().collect();
        prop_assert!(deleted(&images, &all, window).is_subset(&base));
        let wider = window + Duration::from_secs(longer * 3600);
        prop_assert!(deleted(&images, &uses, wider).is_subset(&base));
    }
}

#!/usr/bin/env python3
"""Drives pullstack's two jobs against a running `pullstack serve`, the way
GitHub would, with signed webhook deliveries built from real recorded
payloads:

  the developer's: a pull request opened, pushed to and merged, with its
  preview created, updated and removed (the PR comment shows each step);

  the release manager's: each merge released to production on the load
  balancer, the second one as a canary whose weights move step by step,
  then rolled back with `pullstack prod rollback --yes`, and the releases
  listed with `pullstack prod history`.

Every step waits for something it can observe, within a bound, and stops
the demo with the logs to read when it is not seen.

Used by scripts/demo.sh; standard library only."""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVE = os.environ["DEMO_SERVE_URL"]
FAKE = os.environ["DEMO_GITHUB_URL"]
SECRET = os.environ["PULLSTACK_WEBHOOK_SECRET"].encode()
REPO = os.environ["DEMO_REPO"]
APP = os.environ["DEMO_APP"]
AWS = os.environ["DEMO_AWS"]
PULLSTACK = os.environ["DEMO_PULLSTACK"]
CONFIG = os.environ["DEMO_CONFIG"]
LOGS = os.environ["DEMO_LOGS"].split()
DEVELOPER = "alice"
RELEASE_MANAGER = "rita"


def fail(message):
    print(f"\nDEMO FAILED: {message}", file=sys.stderr)
    print("Logs:", *LOGS, sep="\n  ", file=sys.stderr)
    sys.exit(1)


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def aws(*args):
    out = subprocess.run([AWS, *args, "--output", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"aws {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout or "null")


def pullstack(*args, json_output=False):
    """Runs the pullstack CLI as a release manager would; its output."""
    extra = ["-o", "json"] if json_output else []
    out = subprocess.run([PULLSTACK, "prod", "--config", CONFIG, *extra, *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"pullstack prod {' '.join(args)} exited {out.returncode}:\n{out.stderr.strip()}")
    return json.loads(out.stdout) if json_output else out.stdout.rstrip()


def wait_until(what, probe, limit=60, every=0.25):
    """Polls `probe` until it returns something truthy, for `limit` seconds."""
    deadline = time.time() + limit
    while time.time() < deadline:
        seen = probe()
        if seen:
            return seen
        time.sleep(every)
    fail(f"timed out after {limit}s waiting for {what}")


def push_image(sha):
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1000,
                   "digest": "sha256:" + "c" * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2000,
                    "digest": "sha256:" + sha + "0" * 24}],
    }
    aws("ecr", "put-image", "--repository-name", APP, "--image-tag", sha,
        "--image-manifest", json.dumps(manifest))
    print(f"  CI pushed image {APP}:{sha[:7]} to ECR")


def set_pr(number, title, sha, state="open"):
    http("POST", f"{FAKE}/_fake/prs", json.dumps({
        "repo": REPO, "number": number, "title": title, "state": state,
        "head_sha": sha, "head_ref": f"feature-{number}", "user": DEVELOPER,
    }).encode(), {"content-type": "application/json"})


def sign_and_send(event, payload):
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    status, reply = http("POST", f"{SERVE}/webhook", body, {
        "content-type": "application/json", "x-github-event": event,
        "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": signature,
    })
    if status != 202:
        fail(f"webhook {event} answered {status} {reply}")
    return status, reply


def with_repo(payload):
    owner, name = REPO.split("/")
    payload["repository"].update({"full_name": REPO, "name": name})
    payload["repository"]["owner"]["login"] = owner
    return payload


def deliver(number, title, action, sha, state="open", merged=False):
    with open(os.path.join(ROOT, "tests/fixtures/rust-lang-bors/pull-request-opened.json")) as f:
        payload = with_repo(json.load(f))
    payload["action"] = action
    payload["number"] = number
    pr = payload["pull_request"]
    pr.update({"number": number, "state": state, "merged": merged, "title": title})
    pr["head"].update({"sha": sha, "ref": f"feature-{number}"})
    for side in (pr["head"], pr["base"]):
        side["repo"].update({"full_name": REPO, "name": REPO.split("/")[1]})
    status, reply = sign_and_send("pull_request", payload)
    print(f"  delivered pull_request.{action}{' (merged)' if merged else ''} -> {status} {reply}")


def deliver_push(before, after):
    with open(os.path.join(ROOT, "tests/fixtures/rust-lang-bors/push.json")) as f:
        payload = with_repo(json.load(f))
    payload.update({"ref": "refs/heads/main", "before": before, "after": after,
                    "created": False, "deleted": False, "forced": False})
    payload["head_commit"]["id"] = after
    payload["commits"] = [payload["head_commit"]]
    status, reply = sign_and_send("push", payload)
    print(f"  delivered push to main ({before[:7]}..{after[:7]}) -> {status} {reply}")


def merge(number, title, sha, before):
    """The release manager presses merge: GitHub fast-forwards main to the
    PR's head and sends `pull_request` closed (merged) and `push`."""
    status, pr = http("POST", f"{FAKE}/_fake/merge", json.dumps({
        "repo": REPO, "number": number, "merged_by": RELEASE_MANAGER,
    }).encode(), {"content-type": "application/json"})
    if not pr.get("merged"):
        fail(f"the GitHub stand-in did not merge PR #{number}: {status} {pr}")
    print(f"  @{RELEASE_MANAGER} merged PR #{number}; main is now {sha[:7]}")
    deliver(number, title, "closed", sha, state="closed", merged=True)
    deliver_push(before, sha)


def comment(number):
    owner, name = REPO.split("/")
    _, comments = http("GET", f"{FAKE}/_fake/comments/{owner}/{name}/{number}")
    bodies = [c["body"] for c in comments if c["user"] == "pullstack[bot]"]
    return bodies[-1] if bodies else ""


def wait_for_comment(number, text, limit=60):
    return wait_until(f"PR #{number}'s comment to say {text!r} (it says: {comment(number)!r})",
                      lambda: text in comment(number) and comment(number), limit)


def show(number, title, body):
    print(f"\n--- PR #{number} comment ({title}) ---")
    # The first line is the hidden state marker; show what a reader sees.
    print("\n".join(body.splitlines()[1:]).strip())
    stacks = aws("cloudformation", "describe-stacks")["Stacks"]
    print("--- stacks ---")
    for s in sorted(stacks, key=lambda s: s["StackName"]):
        tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
        commit = tags.get("pullstack:commit", "")[:7]
        print(f"  {s['StackName']:<28} {s['StackStatus']:<18} {commit}")
    print()


def release_stack(sha):
    return f"{APP}-prod-{sha[:7]}"


def weights():
    """Production's weights as `pullstack prod status` reads them."""
    return {s["stack"]: s["weight"] for s in pullstack("status", json_output=True)["stacks"]}


def rule_weights():
    """The production rule's forward action, straight from ELBv2, by stack."""
    stacks = aws("cloudformation", "describe-stacks")["Stacks"]
    outputs = {s["StackName"]: {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}
               for s in stacks}
    rule = outputs.get(f"{APP}-prod-edge", {}).get("ProductionRuleArn")
    if not rule:
        fail(f"the production load balancer {APP}-prod-edge has no ProductionRuleArn output")
    by_group = {o.get("TargetGroupArn"): name for name, o in outputs.items()}
    action = aws("elbv2", "describe-rules", "--rule-arns", rule)["Rules"][0]["Actions"][0]
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    return {by_group.get(g["TargetGroupArn"], g["TargetGroupArn"]): g["Weight"] for g in groups}


def show_status(title):
    print(f"\n$ pullstack prod status   # {title}")
    print(pullstack("status"))


def watch_canary(new, limit=90):
    """Prints production's status each time the weights move, until `new`
    holds all traffic."""
    last = None
    deadline = time.time() + limit
    while time.time() < deadline:
        now = weights()
        if now != last and new in now:
            moved = ", ".join(f"{stack} {weight}%" for stack, weight in sorted(now.items()) if weight)
            print(f"\n  [{time.strftime('%H:%M:%S')}] weights: {moved}")
            print(pullstack("status"))
            last = now
        if now.get(new) == 100 and all(w == 0 for s, w in now.items() if s != new):
            return
        time.sleep(0.25)
    fail(f"timed out after {limit}s waiting for {new} to hold all traffic (last seen: {last})")


def main():
    zero = "0" * 40
    first = hashlib.sha1(b"demo-first").hexdigest()
    second = hashlib.sha1(b"demo-second").hexdigest()
    third = hashlib.sha1(b"demo-third").hexdigest()
    feature = "Add the demo feature"

    print(f"1. @{DEVELOPER} opens PR #42 at {first[:7]}.")
    push_image(first)
    set_pr(42, feature, first)
    deliver(42, feature, "opened", first)
    show(42, "opened", wait_for_comment(42, "Ready"))

    print(f"2. @{DEVELOPER} pushes {second[:7]} to PR #42.")
    push_image(second)
    set_pr(42, feature, second)
    deliver(42, feature, "synchronize", second)
    wait_for_comment(42, f"at `{second[:7]}`")
    show(42, "after the push", wait_for_comment(42, "Ready"))

    print(f"3. @{RELEASE_MANAGER} merges PR #42: its preview goes, and {second[:7]} is released.")
    merge(42, feature, second, zero)
    show(42, "merged", wait_for_comment(42, "Removed"))
    v1 = release_stack(second)
    wait_until(f"{v1} to hold all production traffic", lambda: weights().get(v1) == 100)
    show_status("the first release holds all traffic")

    tune = "Tune the demo feature"
    print(f"\n4. @{DEVELOPER}'s PR #43 ({third[:7]}) is merged: a canary, step by step.")
    push_image(third)
    set_pr(43, tune, third)
    merge(43, tune, third, second)
    v2 = release_stack(third)
    watch_canary(v2)
    print(f"\n  the production rule on the load balancer (aws elbv2 describe-rules): {rule_weights()}")

    print(f"\n5. Something is wrong with {third[:7]}: @{RELEASE_MANAGER} rolls back.")
    print("$ pullstack prod rollback --yes")
    started = time.time()
    print(pullstack("rollback", "--yes"))
    print(f"  (the command took {time.time() - started:.1f}s, start to finish)")
    restored = rule_weights()
    print(f"  the production rule on the load balancer (aws elbv2 describe-rules): {restored}")
    if restored.get(v1) != 100 or any(w for s, w in restored.items() if s != v1):
        fail(f"the rollback did not restore {v1} to all traffic: {restored}")
    show_status("after the rollback")
    told = comment(43).strip()
    if told:
        print(f"\n--- PR #43 comment ---\n{told}")

    print("\n6. What production went through.")
    print("$ pullstack prod history")
    print(pullstack("history"))
    print("\nDone: a preview created, updated and removed; two releases on the production load "
          "balancer, the second a canary rolled back in one call.")


if __name__ == "__main__":
    main()

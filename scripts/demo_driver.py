#!/usr/bin/env python3
"""Drives one pull request through open -> push -> close against a running
`pullstack serve`, the way GitHub would: signed webhook deliveries built from
a real recorded payload. Shows the PR comment and the stacks as they change.

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
AWS = os.path.join(ROOT, ".venv", "bin", "aws")
PR = 42


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def aws(*args):
    out = subprocess.run([AWS, *args, "--output", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "null")


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
    print(f"  pushed image {APP}:{sha[:7]} to ECR")


def set_pr(sha, state="open"):
    http("POST", f"{FAKE}/_fake/prs", json.dumps({
        "repo": REPO, "number": PR, "title": "Add the demo feature", "state": state,
        "head_sha": sha, "head_ref": "demo-feature", "user": "alice",
    }).encode(), {"content-type": "application/json"})


def deliver(action, sha, state="open"):
    with open(os.path.join(ROOT, "tests/fixtures/rust-lang-bors/pull-request-opened.json")) as f:
        payload = json.load(f)
    owner, name = REPO.split("/")
    payload["action"] = action
    payload["number"] = PR
    pr = payload["pull_request"]
    pr.update({"number": PR, "state": state, "merged": False, "title": "Add the demo feature"})
    pr["head"].update({"sha": sha, "ref": "demo-feature"})
    for side in (pr["head"], pr["base"]):
        side["repo"].update({"full_name": REPO, "name": name})
    payload["repository"].update({"full_name": REPO, "name": name})
    payload["repository"]["owner"]["login"] = owner
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    status, reply = http("POST", f"{SERVE}/webhook", body, {
        "content-type": "application/json", "x-github-event": "pull_request",
        "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": signature,
    })
    print(f"  delivered pull_request.{action} -> {status} {reply}")


def comment():
    owner, name = REPO.split("/")
    _, comments = http("GET", f"{FAKE}/_fake/comments/{owner}/{name}/{PR}")
    bodies = [c["body"] for c in comments if c["user"] == "pullstack[bot]"]
    return bodies[-1] if bodies else ""


def wait_for(text, limit=60):
    start = time.time()
    while time.time() - start < limit:
        body = comment()
        if text in body:
            return body
        time.sleep(0.3)
    sys.exit(f"timed out waiting for the comment to say {text!r}; it says:\n{comment()}")


def show(title, body):
    print(f"\n--- PR #{PR} comment ({title}) ---")
    # The first line is the hidden state marker; show what a reader sees.
    print("\n".join(body.splitlines()[1:]).strip())
    stacks = aws("cloudformation", "describe-stacks")["Stacks"]
    print("--- stacks ---")
    for s in stacks:
        tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
        commit = tags.get("pullstack:commit", "")[:7]
        print(f"  {s['StackName']:<28} {s['StackStatus']:<18} {commit}")
    print()


def main():
    first = hashlib.sha1(b"demo-first").hexdigest()
    second = hashlib.sha1(b"demo-second").hexdigest()

    print(f"1. A developer opens PR #{PR} at {first[:7]}; CI pushes its image.")
    push_image(first)
    set_pr(first)
    deliver("opened", first)
    show("opened", wait_for("Ready"))

    print(f"2. The developer pushes {second[:7]}.")
    push_image(second)
    set_pr(second)
    deliver("synchronize", second)
    wait_for(f"at `{second[:7]}`")
    show("after the push", wait_for("Ready"))

    print("3. The pull request is closed.")
    set_pr(second, state="closed")
    deliver("closed", second, state="closed")
    show("closed", wait_for("Removed"))
    print("Done: one comment, edited in place; the preview stack was created, updated and deleted.")


if __name__ == "__main__":
    main()

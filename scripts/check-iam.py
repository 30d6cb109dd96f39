#!/usr/bin/env python3
"""Checks the IAM policies in iam/ so they cannot drift from what pullstack does.

1. parliament lints every policy (community auditors included); a finding
   fails the check unless iam/parliament.yaml lists it with its reason.
2. Each policy allows exactly what its holder needs, no more and no less:
   - every AWS SDK operation the code behind it calls (found in src/ with the
     operation names of the aws-sdk crates in Cargo.lock);
   - for a policy CloudFormation acts with, every permission the resource
     handlers of its template's resource types list (from cfn-lint's
     resource schemas), except those in UNUSED below, each with its reason;
   - for the GitHub Action's roles, the AWS CLI calls in action.yml and
     what `docker push` needs.
3. A statement grants Resource "*" only for actions that AWS cannot scope
   to a resource (by parliament's IAM database) or that WIDE names.
4. The trust policies trust only whom they should.

Run with the project venv's python (scripts/setup-tools.sh), from anywhere:
    .venv/bin/python scripts/check-iam.py
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass, field

import cfnlint
import parliament
import yaml
from parliament import analyze_policy_string, enhance_finding, override_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
IAM = ROOT / "iam"
PREVIEW = "templates/preview.yaml"
SHARED = "templates/shared.yaml"
EDGE = "templates/edge.yaml"

# IAM service prefix of each aws-sdk crate pullstack uses. A new crate must
# be added here, and its calls to the policies.
IAM_PREFIX = {
    # A dev-dependency: the tests request certificates from moto.
    "aws-sdk-acm": "acm",
    "aws-sdk-cloudformation": "cloudformation",
    "aws-sdk-cloudwatch": "cloudwatch",
    "aws-sdk-cloudwatchlogs": "logs",
    "aws-sdk-ecr": "ecr",
    "aws-sdk-ecs": "ecs",
    "aws-sdk-elasticloadbalancingv2": "elasticloadbalancing",
    # A dev-dependency: the tests read roles' policies back from moto.
    "aws-sdk-iam": "iam",
    "aws-sdk-rds": "rds",
    "aws-sdk-route53": "route53",
    "aws-sdk-secretsmanager": "secretsmanager",
    "aws-sdk-sqs": "sqs",
    "aws-sdk-dynamodb": "dynamodb",
}

# Batch operations IAM authorises with the single call's action.
BATCH = {
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}

# What `pullstack bootstrap` calls: src/cli/bootstrap.rs may use these
# methods of the stacks client and nothing else of AWS.
BOOTSTRAP_METHODS = {
    "stacks": {"describe", "create", "update", "recent_events"},
    "sqs": {"create"},
    "leases": {"create_table"},
}

# Client methods only `bootstrap` calls: the serve policies need not allow
# what they do (creating the queue and the lease table).
BOOTSTRAP_ONLY = {"sqs": {"create", "create_queue"}, "leases": {"create_table"}}

# Code whose AWS clients a pull request's `handle-event` run reaches
# (the GitHub Action's preview role): a preview or branch pass, the queue
# and routing, and handle-event itself.
PREVIEW_CODE = ["src/reconcile/preview", "src/reconcile/*.rs", "src/cli/handle_event.rs"]

# Files under PREVIEW_CODE that only `serve` runs: a server of many
# repositories (handle-event serves the one repository of its config).
SERVE_ONLY = {"src/reconcile/hub.rs"}

# Clients whose operations a preview needs only for the methods it calls.
BY_METHOD_IN_PREVIEWS = {"health"}

# What `docker push` of the commit's image asks of ECR (action.yml).
DOCKER_PUSH = {
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
}

# Permissions the resource handlers list that the templates never need,
# because they serve a property or feature the templates do not use.
UNUSED = {
    "acm-pca:GetCertificate": "private CA certificates; the edge's certificate is public, DNS-validated",
    "acm-pca:IssueCertificate": "private CA certificates; the edge's certificate is public, DNS-validated",
    "cognito-idp:DescribeUserPoolClient": "listener actions that authenticate with Cognito; the listener only forwards",
    "ec2:AssociateSubnetCidrBlock": "IPv6 subnet blocks; the subnets are IPv4 only",
    "ec2:DisassociateSubnetCidrBlock": "IPv6 subnet blocks; the subnets are IPv4 only",
    "ec2:AttachVpnGateway": "VPN gateways; the one gateway attached is an internet gateway",
    "ec2:DetachVpnGateway": "VPN gateways; the one gateway attached is an internet gateway",
    "ec2:CreateVpcEncryptionControl": "VPC encryption controls, which the VPC does not set",
    "ec2:DescribeIpamPools": "IPAM pools for load balancer addresses; none is set",
    "ec2:ModifyVpcTenancy": "instance tenancy, which the VPC does not set",
    "ecr:DeleteRepositoryPolicy": "a repository policy, which the repository does not have",
    "ecr:SetRepositoryPolicy": "a repository policy, which the repository does not have",
    "ecs:PutAccountSetting": "account-wide ECS settings, which the cluster does not set",
    "ecs:PutAccountSettingDefault": "account-wide ECS settings, which the cluster does not set",
    "elasticloadbalancing:ModifyCapacityReservation": "reserved load balancer capacity; none is set",
    "elasticloadbalancing:ModifyIpPools": "IPAM pools for load balancer addresses; none is set",
    "firehose:TagDeliveryStream": "log delivery to Firehose; the log group delivers nowhere",
    "iam:DeleteRolePermissionsBoundary": "a permissions boundary, which the execution role does not have",
    "iam:PutRolePermissionsBoundary": "a permissions boundary, which the execution role does not have",
    "kms:CreateGrant": "customer KMS keys; nothing is encrypted with one",
    "kms:DescribeKey": "customer KMS keys; nothing is encrypted with one",
    "kms:RetireGrant": "customer KMS keys; nothing is encrypted with one",
    "logs:AssociateKmsKey": "customer KMS keys; nothing is encrypted with one",
    "logs:DisassociateKmsKey": "customer KMS keys; nothing is encrypted with one",
    "logs:CreateLogDelivery": "log delivery; the log group delivers nowhere",
    "logs:DeleteDataProtectionPolicy": "a data protection policy, which the log group does not have",
    "logs:PutDataProtectionPolicy": "a data protection policy, which the log group does not have",
    "logs:DeleteIndexPolicy": "field index policies, which the log group does not have",
    "logs:PutIndexPolicy": "field index policies, which the log group does not have",
    "logs:DeleteResourcePolicy": "a log resource policy, which the log group does not have",
    "logs:PutResourcePolicy": "a log resource policy, which the log group does not have",
    "logs:PutBearerTokenAuthentication": "bearer-token ingestion, which the log group does not use",
    "logs:PutLogGroupDeletionProtection": "deletion protection, which the log group does not set",
    "route53:AssociateVPCWithHostedZone": "private hosted zones; the zone is public",
    "route53:DisassociateVPCFromHostedZone": "private hosted zones; the zone is public",
    "route53:CreateQueryLoggingConfig": "DNS query logging, which the zone does not set",
    "route53:DeleteQueryLoggingConfig": "DNS query logging, which the zone does not set",
    "route53:UpdateHostedZoneFeatures": "hosted zone features, which the zone does not set",
    "s3:REST.PUT.OBJECT": "not an IAM action (the log group handler's S3 log delivery)",
}

# Resource types with no AWS resource behind them, so no permissions.
NO_HANDLERS = {
    "AWS::CloudFormation::WaitConditionHandle": "a placeholder the preview template orders its service by",
}

# Actions granted on Resource "*" although AWS can scope them to a resource.
WIDE = {
    "cloudformation:DescribeStacks": "without a stack name it lists every stack, which is how pullstack finds its own by their tags",
    "ec2:DescribeVpcEncryptionControls": "an EC2 Describe call (they take no resource), newer than parliament's IAM database",
}


@dataclass
class Need:
    """What one policy file must allow: the union is exactly its actions."""

    code: set[str] = field(default_factory=set)
    templates: list[str] = field(default_factory=list)
    extra: set[str] = field(default_factory=set)


errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


# ------------------------------------------------------------------ the code


def sdk_operations() -> dict[str, dict[str, str]]:
    """For each aws-sdk crate pullstack depends on: snake_case method name ->
    IAM action, read from the crate's generated operation modules."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    root = next(p for p in meta["packages"] if p["name"] == "pullstack")
    node = next(n for n in meta["resolve"]["nodes"] if n["id"] == root["id"])
    crates = {}
    for dep in node["deps"]:
        package = packages[dep["pkg"]]
        name = package["name"]
        if not name.startswith("aws-sdk-"):
            continue
        if name not in IAM_PREFIX:
            fail(f"{name}: unknown crate; add its IAM prefix to IAM_PREFIX in {__file__}")
            continue
        operations = pathlib.Path(package["manifest_path"]).parent / "src" / "operation"
        ops = {}
        for module in operations.glob("*.rs"):
            wire = re.search(r'Metadata::new\(\s*"(\w+)"', module.read_text())
            if wire:
                action = f"{IAM_PREFIX[name]}:{wire.group(1)}"
                ops[module.stem] = BATCH.get(action, action)
        crates[name.removeprefix("aws-sdk-").replace("-", "_")] = ops
    return crates


def without_tests(text: str) -> str:
    return text.split("\n#[cfg(test)]", 1)[0]


def calls(text: str, crates: dict[str, dict[str, str]]) -> set[str]:
    """The SDK operations called in `text`, attributed to the crates it names."""
    named = {c for c in crates if f"aws_sdk_{c}" in text}
    found = set()
    for method in set(re.findall(r"\.([a-z][a-z0-9_]*)\(\)", text)):
        for crate in named:
            if method in crates[crate]:
                found.add(crates[crate][method])
    return found


def functions(text: str) -> dict[str, str]:
    """Each method of a client file and its body (up to the next method)."""
    starts = list(re.finditer(r"\n    pub (?:async )?fn (\w+)", text))
    out = {}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        out[match.group(1)] = text[match.start() : end]
    return out


def client_files() -> dict[str, pathlib.Path]:
    """The fields of `Aws` (src/aws/mod.rs) and the file of each client."""
    text = (ROOT / "src/aws/mod.rs").read_text()
    fields = re.findall(r"pub (\w+): (\w+)::\w+,", text)
    return {name: ROOT / "src/aws" / f"{module}.rs" for name, module in fields}


def code_needs(crates) -> tuple[set[str], set[str], set[str]]:
    """The operations of all of pullstack, of `bootstrap`, and of a pull
    request's `handle-event` run."""
    files = client_files()
    bootstrap_only = {files[client]: methods for client, methods in BOOTSTRAP_ONLY.items()}
    everything = set()
    for path in sorted((ROOT / "src").rglob("*.rs")):
        if path.name == "tests.rs" or path == ROOT / "src/cli/bootstrap.rs":
            continue
        text = without_tests(path.read_text())
        for method, body in functions(text).items():
            if method in bootstrap_only.get(path, set()):
                text = text.replace(body, "\n")
        everything |= calls(text, crates)

    def client_ops(client: str, methods: set[str] | None = None) -> set[str]:
        text = without_tests(files[client].read_text())
        # A method's body alone may not name its crate; the file does.
        named = "".join(f"use aws_sdk_{c};\n" for c in crates if f"aws_sdk_{c}" in text)
        bodies = functions(text)
        if methods is None:
            return calls(text, crates)
        ops = set()
        for method in methods:
            if method not in bodies:
                fail(f"{files[client]}: no method {method} (BOOTSTRAP_METHODS in {__file__})")
                continue
            ops |= calls(named + bodies[method], crates)
        return ops

    bootstrap_text = (ROOT / "src/cli/bootstrap.rs").read_text()
    used = {}
    for client, method in re.findall(r"aws\s*\.\s*(\w+)\s*\.\s*(\w+)\(", bootstrap_text):
        used.setdefault(client, set()).add(method)
    if used != BOOTSTRAP_METHODS:
        fail(
            f"src/cli/bootstrap.rs uses {sorted((c, sorted(m)) for c, m in used.items())}; "
            f"update BOOTSTRAP_METHODS in {__file__} and the bootstrap policies"
        )
    bootstrap = set()
    for client, methods in BOOTSTRAP_METHODS.items():
        bootstrap |= client_ops(client, methods)

    preview_clients = set()
    # Clients a preview uses only a few methods of (the health reads, not
    # production's alarms) are counted by the methods it calls.
    preview_methods: dict[str, set[str]] = {client: set() for client in BY_METHOD_IN_PREVIEWS}
    for pattern in PREVIEW_CODE:
        paths = [ROOT / pattern] if not any(ch in pattern for ch in "*") else ROOT.glob(pattern)
        for path in paths:
            for file in [path] if path.is_file() else sorted(path.rglob("*.rs")):
                if str(file.relative_to(ROOT)) in SERVE_ONLY:
                    continue
                text = without_tests(file.read_text())
                preview_clients |= set(re.findall(r"\baws\s*\.\s*(\w+)\b", text))
                for client, method in re.findall(r"\baws\s*\.\s*(\w+)\s*\.\s*(\w+)\(", text):
                    if client in preview_methods:
                        preview_methods[client].add(method)
    # Not clients: a builder, and the region for console links.
    preview_clients -= {"with_cloudformation_role", "region"}
    unknown = preview_clients - set(files)
    if unknown:
        fail(f"{PREVIEW_CODE}: unknown AWS clients {sorted(unknown)}")
    preview = set()
    for client in sorted(preview_clients & set(files)):
        methods = preview_methods.get(client)
        if methods == set():
            fail(f"{PREVIEW_CODE}: call aws.{client}'s methods as aws.{client}.<method>(...), so check-iam can count them")
        preview |= client_ops(client, methods) if methods is not None else client_ops(client)
    return everything, bootstrap, preview


# ------------------------------------------------------------- the templates


def handler_permissions(template: str) -> dict[str, set[str]]:
    """Permission -> the resource types of `template` whose create, read,
    update or delete handler lists it."""
    schemas = pathlib.Path(cfnlint.__file__).parent / "data" / "schemas"
    provider = json.loads((schemas / "providers" / "us-east-1.json").read_text())
    body = yaml.safe_load((ROOT / template).read_text())
    needs: dict[str, set[str]] = {}
    for logical, resource in body["Resources"].items():
        kind = resource["Type"]
        schema = json.loads((schemas / "resources" / f"{provider[kind]}.json").read_text())
        handlers = schema.get("handlers")
        if kind in NO_HANDLERS:
            continue
        if not handlers:
            fail(f"{template}: {logical} ({kind}) has no handler permissions in cfn-lint's schema")
            continue
        for handler in ("create", "read", "update", "delete"):
            for permission in handlers.get(handler, {}).get("permissions", []):
                needs.setdefault(permission, set()).add(kind)
    return needs


def template_needs(templates: list[str]) -> set[str]:
    out = set()
    for template in templates:
        for permission in handler_permissions(template):
            if permission not in UNUSED:
                out.add(permission)
        # A dynamic reference is read with the stack operation's identity.
        if "{{resolve:secretsmanager:" in (ROOT / template).read_text():
            out.add("secretsmanager:GetSecretValue")
    return out


def action_yml_needs() -> set[str]:
    """The AWS CLI calls in action.yml, and docker's push to ECR."""
    text = (ROOT / "action.yml").read_text()
    out = set()
    for service, command in re.findall(r"\baws ([a-z0-9]+) ([a-z][a-z0-9-]*)", text):
        if (service, command) == ("ecr", "get-login-password"):
            out.add("ecr:GetAuthorizationToken")
        else:
            out.add(f"{service}:{''.join(part.title() for part in command.split('-'))}")
    if "docker push" in text:
        out |= DOCKER_PUSH
    return out


# ---------------------------------------------------------------- policies


def load(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        fail(f"{path.relative_to(ROOT)}: not JSON: {err}")
        return {"Statement": []}


def statements(policy: dict) -> list[dict]:
    body = policy.get("Statement", [])
    return body if isinstance(body, list) else [body]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def iam_database() -> dict[str, dict]:
    """parliament's IAM database: action -> its resource types."""
    path = pathlib.Path(parliament.__file__).parent / "iam_definition.json"
    actions = {}
    for service in json.loads(path.read_text()):
        for privilege in service["privileges"]:
            actions[f"{service['prefix']}:{privilege['privilege']}".lower()] = privilege
    return actions


def check_policy(name: str, need: Need, database: dict) -> None:
    policy = load(IAM / name)
    if policy.get("Version") != "2012-10-17":
        fail(f"iam/{name}: Version must be 2012-10-17")
    granted = set()
    sids = [s.get("Sid") for s in statements(policy)]
    if len(sids) != len(set(sids)) or None in sids:
        fail(f"iam/{name}: every statement needs a Sid of its own")
    for statement in statements(policy):
        sid = statement.get("Sid")
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            fail(f"iam/{name} {sid}: only Allow with Action and Resource")
        actions = as_list(statement.get("Action", []))
        for action in actions:
            if "*" in action or "?" in action:
                fail(f"iam/{name} {sid}: {action}: name each action, no wildcards")
            granted.add(action)
        if "*" in as_list(statement.get("Resource", [])):
            for action in actions:
                privilege = database.get(action.lower())
                scoped = privilege and any(r["resource_type"] for r in privilege["resource_types"])
                if (scoped or privilege is None) and action not in WIDE:
                    fail(f"iam/{name} {sid}: {action} can be scoped to a resource, but is granted on *")
    wanted = need.code | template_needs(need.templates) | need.extra
    for action in sorted(wanted - granted):
        fail(f"iam/{name}: does not allow {action}, which {why(action, need)} needs")
    for action in sorted(granted - wanted):
        fail(f"iam/{name}: allows {action}, which nothing it is for calls")


def why(action: str, need: Need) -> str:
    if action in need.code:
        return "pullstack's code"
    for template in need.templates:
        kinds = handler_permissions(template).get(action)
        if kinds:
            return f"CloudFormation's handler for {', '.join(sorted(kinds))} ({template})"
    return "action.yml"


def check_trust(name: str, principal: dict, conditions: dict) -> None:
    policy = load(IAM / name)
    body = statements(policy)
    if len(body) != 1:
        fail(f"iam/{name}: one statement expected")
        return
    statement = body[0]
    if statement.get("Principal") != principal:
        fail(f"iam/{name}: trusts {statement.get('Principal')}, expected {principal}")
    if statement.get("Condition") != conditions:
        fail(f"iam/{name}: conditions {statement.get('Condition')}, expected {conditions}")


# --------------------------------------------------------------- parliament


def shared_roles() -> list[str]:
    """The names CloudFormation gives the shared stack's IAM roles
    (`<stack>-<logical id>-<suffix>`), for the example stack APP-shared."""
    template = yaml.safe_load((ROOT / SHARED).read_text())
    return [
        f"APP-shared-{logical}-EXAMPLE"
        for logical, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::IAM::Role"
    ]


def check_shared_roles() -> None:
    """Each action a policy grants on one of the shared stack's roles, it
    grants on all of them: a role added to the template, or renamed, must
    not be left to a pattern that names only the others."""
    roles = shared_roles()
    for path in sorted(IAM.rglob("*-policy.json")):
        granted: dict[str, set[str]] = {}
        for statement in statements(load(path)):
            if statement.get("Effect") != "Allow":
                continue
            patterns = [
                r.split(":role/", 1)[1]
                for r in as_list(statement.get("Resource", []))
                if ":role/APP-shared-" in r
            ]
            for action in as_list(statement.get("Action", [])):
                for role in roles:
                    if any(fnmatch.fnmatchcase(role, p) for p in patterns):
                        granted.setdefault(action, set()).add(role)
        for action, covered in sorted(granted.items()):
            for role in roles:
                if role not in covered:
                    fail(
                        f"{path.relative_to(ROOT)}: grants {action} on some of the shared stack's "
                        f"roles but not on {role.removesuffix('-EXAMPLE')}-*"
                    )


def lint() -> None:
    """parliament with the community auditors, minus the documented exceptions.

    Exceptions are matched here rather than by parliament's own
    `ignore_locations`, which never matches in parliament 1.6
    (duo-labs/parliament#147: its make_list drops plain YAML values)."""
    community = pathlib.Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    override_config(str(community))
    exceptions = yaml.safe_load((IAM / "parliament.yaml").read_text()) or {}
    used = set()
    for path in sorted(IAM.rglob("*.json")):
        relative = str(path.relative_to(ROOT))
        result = analyze_policy_string(
            path.read_text(), relative, include_community_auditors=True, config=parliament.config
        )
        for finding in result.findings:
            finding = enhance_finding(finding)
            location = dict(finding.location)
            location.setdefault("filepath", relative)
            matched = None
            for index, rule in enumerate(exceptions.get(finding.issue, [])):
                if all(
                    re.fullmatch(str(pattern), str(location.get(key, "")), re.IGNORECASE)
                    for key, pattern in rule.items()
                ):
                    matched = (finding.issue, index)
                    break
            if matched:
                used.add(matched)
            else:
                fail(f"parliament: {finding.severity} {finding.issue} {finding.title}: {finding.detail} at {location}")
    for issue, rules in exceptions.items():
        for index, rule in enumerate(rules):
            if (issue, index) not in used:
                fail(f"iam/parliament.yaml: {issue} exception {rule} matches no finding any more; remove it")


def main() -> int:
    lint()
    crates = sdk_operations()
    everything, bootstrap, preview = code_needs(crates)
    database = iam_database()
    pass_role = {"iam:PassRole"}
    # RDS authorises the tags given with RestoreDBClusterToPointInTime and
    # CreateDBInstance (the previews' database clones) as this action too.
    tag_on_create = {"rds:AddTagsToResource"}
    policies = {
        "serve-policy.json": Need(code=everything, templates=[PREVIEW, EDGE], extra=tag_on_create),
        "bootstrap-policy.json": Need(code=bootstrap, templates=[SHARED]),
        "service-role/serve-policy.json": Need(code=everything, extra=pass_role | tag_on_create),
        "service-role/bootstrap-policy.json": Need(code=bootstrap, extra=pass_role),
        "service-role/cloudformation-role-policy.json": Need(templates=[PREVIEW, SHARED, EDGE]),
        "github/preview-role-policy.json": Need(
            code=preview, templates=[PREVIEW, EDGE], extra=tag_on_create
        ),
        "github/image-push-policy.json": Need(extra=action_yml_needs()),
    }
    for name, need in policies.items():
        check_policy(name, need, database)
    check_shared_roles()
    listed = {str(p.relative_to(IAM)) for p in IAM.rglob("*-policy.json")}
    trust = {
        "service-role/cloudformation-role-trust-policy.json",
        "github/preview-role-trust-policy.json",
        "github/release-role-trust-policy.json",
    }
    for name in sorted(listed - set(policies) - trust):
        fail(f"iam/{name}: not checked; add it to {__file__}")

    oidc = {"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"}

    def github(sub: str) -> dict:
        return {
            "StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": sub,
            }
        }

    check_trust("github/preview-role-trust-policy.json", oidc, github("repo:OWNER/REPO:pull_request"))
    check_trust(
        "github/release-role-trust-policy.json", oidc, github("repo:OWNER/REPO:environment:production")
    )
    check_trust(
        "service-role/cloudformation-role-trust-policy.json",
        {"Service": "cloudformation.amazonaws.com"},
        {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    )

    for error in errors:
        print(f"check-iam: {error}", file=sys.stderr)
    if not errors:
        print(
            f"check-iam: {len(policies)} policies and {len(trust)} trust policies match the code "
            f"({len(everything)} SDK operations) and the templates"
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""template.yaml, proven offline: cfn-lint, the key schemas, least-privilege IAM, the wiring.

``sam validate --lint`` runs in its own virtual environment (``make sam-validate``; CI runs it
after ``make test``), because aws-sam-cli pins versions that clash with ours.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.api.settings import ApiSettings
from tracking.stores.dynamodb.schema import table_definitions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation's short tags (``!Sub``, ``!GetAtt`` ...) as the
    long form (``{"Fn::Sub": ...}``), as CloudFormation itself does."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    key = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    return loaded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: body for name, body in resources.items() if body["Type"] == kind}


def test_cfn_lint_is_clean() -> None:
    # The console script of the interpreter running the tests (cfnlint has no __main__).
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_sam_validate_lint() -> None:
    """``make sam-validate``: installs aws-sam-cli under .venv/sam-cli once (~45-55 s with a cold
    pip cache), then ``sam validate --lint`` with dummy credentials (~5 s)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "sam-validate"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_loader_understands_cloudformation_tags() -> None:
    text = 'a: !Sub "${X}-y"\nb: !GetAtt T.Arn\nc: !If [C, [1], !Ref AWS::NoValue]\n'
    assert yaml.load(text, Loader=CloudFormationLoader) == {
        "a": {"Fn::Sub": "${X}-y"},
        "b": {"Fn::GetAtt": ["T", "Arn"]},
        "c": {"Fn::If": ["C", [1], {"Ref": "AWS::NoValue"}]},
    }


# ------------------------------------------------------------------------------ tables ----


def test_tables_match_the_code_declaration(resources: dict[str, Any]) -> None:
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    declared = {
        # The template names tables !Sub "${TablePrefix}-<suffix>": compare with that prefix.
        definition["TableName"]: definition
        for definition in table_definitions("${TablePrefix}")
    }
    by_name = {body["Properties"]["TableName"]["Fn::Sub"]: body for body in tables.values()}
    assert set(by_name) == set(declared)
    for name, definition in declared.items():
        properties = by_name[name]["Properties"]
        for key in ("KeySchema", "AttributeDefinitions", "BillingMode"):
            assert properties[key] == definition[key], (name, key)
        assert properties.get("GlobalSecondaryIndexes") == definition.get(
            "GlobalSecondaryIndexes"
        ), name


def test_tables_are_protected(resources: dict[str, Any]) -> None:
    for name, body in _of_type(resources, "AWS::DynamoDB::Table").items():
        properties = body["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST", name
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }, name
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert body["DeletionPolicy"] == "Retain", name


# ------------------------------------------------------------------------------ bucket ----


def test_bucket_is_private_versioned_encrypted_and_tls_only(resources: dict[str, Any]) -> None:
    bucket = resources["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    policy = resources["ArtifactBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ArtifactBucket"}
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# -------------------------------------------------------------------------------- IAM -----


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement, with both branches of a conditional (``!If``) statement."""
    found = []
    for statement in document["Statement"]:
        if "Fn::If" in statement:
            found += [
                branch for branch in statement["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}
            ]
        else:
            found.append(statement)
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_documents(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    documents = {}
    for name, body in _of_type(resources, "AWS::IAM::Role").items():
        for policy in body["Properties"].get("Policies", []):
            documents[f"{name}/{policy['PolicyName']}"] = policy["PolicyDocument"]
    for name, body in _of_type(resources, "AWS::IAM::ManagedPolicy").items():
        documents[name] = body["Properties"]["PolicyDocument"]
    return documents


def test_iam_allows_no_wildcards_and_no_acl_writes(resources: dict[str, Any]) -> None:
    documents = _policy_documents(resources)
    assert {"ApiFunctionRole/api-runtime", "TrainingPolicy"} <= set(documents)
    for name, document in documents.items():
        for statement in _statements(document):
            assert statement["Effect"] == "Allow", name
            actions = _as_list(statement["Action"])
            assert all("*" not in action for action in actions), (name, actions)
            assert "s3:PutObjectAcl" not in actions, name
            assert "dynamodb:Scan" not in actions, name
            for resource in _as_list(statement["Resource"]):
                # Resources are our own ARNs; a "*" only ever ends a key prefix (".../mlops/*").
                assert resource != "*", (name, statement)
                if isinstance(resource, dict) and "Fn::Sub" in resource:
                    assert resource["Fn::Sub"].endswith(("/*", "/index/gsi1")), resource


def test_no_managed_or_sam_policy_templates(resources: dict[str, Any]) -> None:
    for name, body in resources.items():
        properties = body.get("Properties", {})
        # SAM policy templates (S3CrudPolicy, DynamoDBCrudPolicy, S3WritePolicy ...) and AWS
        # managed policies only come in through these two properties.
        assert "Policies" not in properties or body["Type"] == "AWS::IAM::Role", name
        assert "ManagedPolicyArns" not in properties, name
    function = resources["ApiFunction"]["Properties"]
    assert "Policies" not in function  # the explicit role is the whole grant
    assert function["Role"] == {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}


def test_api_role_grants_exactly_what_the_api_calls(resources: dict[str, Any]) -> None:
    document = resources["ApiFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    by_sid = {statement["Sid"]: statement for statement in _statements(document)}
    assert set(_as_list(by_sid["ReadTrackingTables"]["Action"])) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
    }
    # Model promotion / rollback (admin routes): one TransactWriteItems on the tracking table.
    moves = by_sid["MoveModelAliases"]
    assert set(_as_list(moves["Action"])) == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert moves["Resource"] == {"Fn::GetAtt": ["TrackingTable", "Arn"]}
    assert by_sid["ReadArtifacts"]["Action"] == "s3:GetObject"
    assert by_sid["ReadArtifacts"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/${ArtifactPrefix}/*"
    }
    assert by_sid["ListArtifactPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": [{"Fn::Sub": "${ArtifactPrefix}/*"}]}
    }
    # The secret is granted only when one is configured, and only that secret.
    (conditional,) = [s for s in document["Statement"] if "Fn::If" in s]
    condition, secret, otherwise = conditional["Fn::If"]
    assert condition == "HasApiKeysSecret"
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert secret["Resource"] == {"Ref": "ApiKeysSecretArn"}
    # The one S3 write: new objects of the prediction log and of POST /feedback, in their two
    # folders only; model artifacts (runs/) stay read-only for the API.
    writes = by_sid["WritePredictionLogAndFeedback"]
    assert writes["Action"] == "s3:PutObject"
    assert writes["Resource"] == [
        {"Fn::Sub": "${ArtifactBucket.Arn}/${ArtifactPrefix}/predictions/*"},
        {"Fn::Sub": "${ArtifactBucket.Arn}/${ArtifactPrefix}/feedback/*"},
    ]
    other_writes = [a for s in _statements(document) if s is not writes
                    for a in _as_list(s["Action"])]  # fmt: skip
    assert not [action for action in other_writes if action.startswith("s3:Put")]


def test_training_policy_writes_both_tables_and_the_prefix(resources: dict[str, Any]) -> None:
    document = resources["TrainingPolicy"]["Properties"]["PolicyDocument"]
    by_sid = {statement["Sid"]: statement for statement in _statements(document)}
    writes = by_sid["WriteTrackingTables"]
    assert {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"} <= set(
        writes["Action"]
    )
    assert {"Fn::GetAtt": ["MetricsTable", "Arn"]} in writes["Resource"]
    assert {"Fn::GetAtt": ["TrackingTable", "Arn"]} in writes["Resource"]
    artifacts = by_sid["ReadWriteArtifacts"]
    assert {"s3:PutObject", "s3:GetObject"} <= set(artifacts["Action"])
    assert artifacts["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/${ArtifactPrefix}/*"}


# --------------------------------------------------------------------------- function -----


def test_image_function_has_no_layers_and_a_short_timeout(resources: dict[str, Any]) -> None:
    body = resources["ApiFunction"]
    function = body["Properties"]
    assert function["PackageType"] == "Image"
    assert "Layers" not in function
    assert function["Architectures"] == ["x86_64"]
    assert function["Timeout"] < 29  # API Gateway's integration timeout
    assert 128 <= function["MemorySize"] <= 10240
    metadata = body["Metadata"]
    assert metadata["Dockerfile"] == "Dockerfile"
    assert metadata["DockerContext"] == "."
    assert metadata["DockerTag"]


def test_environment_is_what_the_settings_read(resources: dict[str, Any]) -> None:
    variables = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    read_by_settings = {str(field.validation_alias) for field in ApiSettings.model_fields.values()}
    read_by_observability = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
    read_by_powertools = {"POWERTOOLS_LOG_LEVEL"}
    unknown = set(variables) - read_by_settings - read_by_observability - read_by_powertools
    assert not unknown, f"variables nothing reads: {unknown}"
    assert variables["TRACKING_URI"] == {"Fn::Sub": "dynamodb://${TablePrefix}"}
    assert variables["ARTIFACT_URI"] == {"Fn::Sub": "s3://${ArtifactBucket}/${ArtifactPrefix}"}
    assert variables["MODEL_CACHE_DIR"] == "/tmp/model-cache"
    assert variables["MODEL_REFRESH_SECONDS"] == {"Ref": "ModelRefreshSeconds"}
    assert variables["SERVED_MODELS"] == {"Ref": "ServedModels"}
    assert variables["API_KEYS_SECRET_ARN"] == {
        "Fn::If": ["HasApiKeysSecret", {"Ref": "ApiKeysSecretArn"}, {"Ref": "AWS::NoValue"}]
    }
    for name in read_by_observability | read_by_powertools:
        assert name in variables


def test_every_route_reaches_the_app_and_the_usage_plan_is_optional(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    api = resources["Api"]["Properties"]
    assert api["StageName"] == {"Ref": "Stage"}
    (throttle,) = api["MethodSettings"]
    assert throttle["ResourcePath"] == "/*"
    assert throttle["HttpMethod"] == "*"
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(throttle)
    paths = api["DefinitionBody"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for path in paths.values():
        method = path["x-amazon-apigateway-any-method"]
        integration = method["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        # The `live` alias, not the unpublished $LATEST: rollback and provisioned concurrency
        # act on the alias.
        assert "${ApiFunction.Alias}" in integration["uri"]["Fn::Sub"]
        assert method["security"]["Fn::If"][0] == "UseUsagePlan"
    assert resources["UsagePlan"]["Condition"] == "UseUsagePlan"
    assert template["Parameters"]["EnableUsagePlan"]["Default"] == "false"
    permission = resources["ApiInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "ApiFunction.Alias"}
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${Api}/*")


def test_parameters_outputs_and_layer(template: dict[str, Any], resources: dict[str, Any]) -> None:
    assert {
        "Stage",
        "TablePrefix",
        "ArtifactPrefix",
        "ApiKeysSecretArn",
        "EnableUsagePlan",
        "ModelRefreshSeconds",
    } <= set(template["Parameters"])
    assert template["Parameters"]["ApiKeysSecretArn"]["Default"] == ""
    assert {
        "ApiUrl",
        "TrackingTableName",
        "MetricsTableName",
        "ArtifactBucketName",
        "TrainingPolicyArn",
    } <= set(template["Outputs"])
    layer = resources["TrackingSdkLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert "build-TrackingSdkLayer:" in (content / "Makefile").read_text()


def test_provisioned_concurrency_is_optional_and_on_the_alias(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    function = resources["ApiFunction"]["Properties"]
    assert function["AutoPublishAlias"] == "live"
    condition, enabled, disabled = function["ProvisionedConcurrencyConfig"]["Fn::If"]
    assert condition == "HasProvisionedConcurrency"
    assert enabled == {"ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}}
    assert disabled == {"Ref": "AWS::NoValue"}
    assert template["Parameters"]["ProvisionedConcurrency"]["Default"] == 0
    assert template["Conditions"]["HasProvisionedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ProvisionedConcurrency"}, 0]}]
    }
    # CloudWatch keys API Gateway metrics by the API's name: it must be set, not generated.
    assert resources["Api"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("", True), ("oncall@example.com", True), ("not-an-address", False), ("a@b", False),
     ("a b@example.com", False)],
)  # fmt: skip
def test_alarm_email_parameter_pattern(
    template: dict[str, Any], value: str, accepted: bool
) -> None:
    import re

    pattern = template["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted

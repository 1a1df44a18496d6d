"""Static checks of infra/terraform: parses the HCL (python-hcl2) and asserts
what the design depends on. checkov runs beside it in the test command."""

import glob
import os

import hcl2
import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "infra", "terraform")


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def strip(value):
    """python-hcl2 versions differ in keeping quotes; compare without them."""
    if isinstance(value, dict):
        return {unquote(k): strip(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return unquote(value)


@pytest.fixture(scope="module")
def tf():
    merged = {"resource": {}, "locals": {}, "data": {}}
    for path in glob.glob(os.path.join(ROOT, "*.tf")):
        with open(path) as f:
            doc = strip(hcl2.load(f))
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                merged["resource"].setdefault(rtype, {}).update(named)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for block in doc.get("data", []):
            for dtype, named in block.items():
                merged["data"].setdefault(dtype, {}).update(named)
    return merged


def one(value):
    """python-hcl2 wraps every attribute value and block in a list of one."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def get(node, *path):
    """Follows HCL attribute and block names, unwrapping each level once."""
    for key in path:
        node = one(node[key])
    return node


def test_table_has_the_key_ttl_and_stream(tf):
    table = tf["resource"]["aws_dynamodb_table"]["codes"]
    assert get(table, "hash_key") == "email"
    assert get(table, "attribute", "name") == "email"
    assert get(table, "attribute", "type") == "S"
    assert get(table, "ttl", "attribute_name") == "ttl"
    assert get(table, "ttl", "enabled") is True
    assert get(table, "stream_enabled") is True
    assert get(table, "stream_view_type") == "NEW_AND_OLD_IMAGES"
    assert get(table, "billing_mode") == "PAY_PER_REQUEST"
    assert get(table, "point_in_time_recovery", "enabled") is True
    assert get(table, "server_side_encryption", "enabled") is True


BASE = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments",
        "xray:PutTelemetryRecords", "ssm:GetParameter", "kms:Decrypt"}


def test_each_role_has_exactly_its_actions(tf):
    own = get(tf["locals"], "function_statements")
    assert set(own) == {"GenerateOTP", "VerifyOTP", "SendOTPEmail"}
    got = {name: sorted(a for s in stmts for a in s["actions"]) for name, stmts in own.items()}
    assert got["GenerateOTP"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert got["VerifyOTP"] == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert got["SendOTPEmail"] == sorted([
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
        "dynamodb:ListStreams", "ses:SendEmail", "sqs:SendMessage", "kms:GenerateDataKey",
    ])
    # No function may scan, query, put or write in batches, and none gets a wildcard action.
    for name, actions in got.items():
        assert not any(a.endswith("*") for a in actions), name
        assert not {"dynamodb:Scan", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:BatchWriteItem"} & set(actions)
    # Resources: the table, its stream, the identity, the queue; never "*".
    for name, stmts in own.items():
        for s in stmts:
            assert s["resources"] != ["*"], (name, s["sid"])


def test_shared_statements_are_logs_traces_and_the_key(tf):
    text = open(os.path.join(ROOT, "iam.tf")).read()
    for action in BASE:
        assert f'"{action}"' in text
    # The only "*" resource is X-Ray's, which has no resource-level permissions.
    assert text.count('resources = ["*"]') == 1


def test_the_api_has_exactly_the_two_post_routes(tf):
    routes = get(tf["locals"], "routes")
    assert sorted(routes.values()) == ["POST /GenerateOTP", "POST /VerifyOTP"]
    assert len(tf["resource"]["aws_apigatewayv2_route"]) == 1  # one resource, for_each over routes
    route = tf["resource"]["aws_apigatewayv2_route"]["route"]
    assert get(route, "for_each") == "${local.routes}"
    integration = tf["resource"]["aws_apigatewayv2_integration"]["route"]
    assert get(integration, "payload_format_version") == "2.0"
    stage = tf["resource"]["aws_apigatewayv2_stage"]["default"]
    throttling = get(stage, "default_route_settings")
    assert "throttling_rate_limit" in throttling and "throttling_burst_limit" in throttling
    assert "access_log_settings" in stage


def test_functions_are_arm64_al2023_built_by_cargo_lambda(tf):
    functions = get(tf["locals"], "functions")
    assert functions == {"GenerateOTP": "generate-otp", "VerifyOTP": "verify-otp", "SendOTPEmail": "send-otp-email"}
    fn = tf["resource"]["aws_lambda_function"]["this"]
    assert get(fn, "runtime") == "provided.al2023"
    assert get(fn, "architectures") == ["arm64"]
    assert get(fn, "handler") == "bootstrap"


def test_the_stream_mapping_reports_partial_failures_and_dead_letters(tf):
    mapping = tf["resource"]["aws_lambda_event_source_mapping"]["stream"]
    assert get(mapping, "function_response_types") == ["ReportBatchItemFailures"]
    assert get(mapping, "bisect_batch_on_function_error") is True
    assert "maximum_retry_attempts" in mapping
    assert "filter_criteria" not in mapping, "resends arrive as MODIFY: no INSERT-only filter"
    assert "send_dlq" in get(mapping, "destination_config", "on_failure", "destination_arn")


def test_alarms_watch_the_dead_letters_and_the_functions(tf):
    alarms = tf["resource"]["aws_cloudwatch_metric_alarm"]
    assert get(alarms["dlq_not_empty"], "metric_name") == "ApproximateNumberOfMessagesVisible"
    assert get(alarms["function_errors"], "metric_name") == "Errors"
